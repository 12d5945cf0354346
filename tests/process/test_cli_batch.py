"""``upres upscale SOURCE... OUTPUT_DIR``: folders of real clips, the manifest, resume,
per-folder settings, ``--json``, and which command lines are the single-file form."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from tests.clips import make_clip, write_not_a_video, write_truncated
from upres.cli import build_app
from upres.cli.batch import single_file_form
from upres.cli.manifest import STATE_DIR

# The fastest settings the CLI tests use: the compact model on the CPU, 1x, no temporal stage.
FAST = ["--model", "realesr-animevideov3", "--device", "cpu", "--factor", "1", "--no-temporal"]


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), ["upscale", *args])
    return result.exit_code, result.stdout, result.stderr


def _size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return video.width, video.height


def _tree(folder: Path) -> list[str]:
    """Every file under ``folder``, the manifest's folder left out."""
    files = (p for p in folder.rglob("*") if p.is_file())
    return sorted(p.relative_to(folder).as_posix() for p in files if STATE_DIR not in p.parts)


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """Two good clips (one in a subfolder, Matroska), a truncated mp4 and a text file."""
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    make_clip(folder / "a.mp4", frames=3, fps=6)
    make_clip(folder / "sub" / "b.mkv", frames=3, fps=6, container="matroska")
    write_truncated(make_clip(tmp_path / "whole.mp4", frames=3, fps=6), folder / "broken.mp4")
    (folder / "notes.txt").write_text("not a video\n")
    return folder


@pytest.mark.parametrize(
    ("paths", "single"),
    [
        (["in.mp4", "out.mp4"], True),
        # An unknown suffix is still a file name: refused as before, not made a folder.
        (["in.mp4", "out.avi"], True),
        (["in.mp4", "newdir"], False),
        (["in.mp4", "newdir.d/"], False),
        (["a.mp4", "b.mp4", "out.mp4"], False),
        (["in.mp4"], False),
    ],
)
def test_which_command_lines_are_the_single_file_form(paths: list[str], single: bool) -> None:
    assert single_file_form(paths) is single


def test_an_existing_folder_named_like_a_video_is_an_output_folder(tmp_path: Path) -> None:
    (tmp_path / "out.mp4").mkdir()
    assert not single_file_form(["in.mp4", str(tmp_path / "out.mp4")])


def test_a_folder_of_good_broken_and_other_files(tmp_path: Path, sources: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _invoke(str(sources), str(out), *FAST, "--container", "mkv")
    assert code == 1, stderr
    assert _tree(out) == ["a.mkv", "sub/b.mkv"]
    assert _size(out / "a.mkv") == (64, 48)
    with av.open(str(out / "sub" / "b.mkv")) as container:
        assert container.format.name == "matroska,webm"
    # The summary table: every file with its status, the broken one with its reason.
    assert "broken.mp4" in stdout
    assert "truncated or damaged" in stdout
    assert "2 done, 1 skipped, 1 failed" in stdout
    assert f"failed  {sources / 'broken.mp4'}: The file is an MP4/MOV" in stderr
    assert not (out / STATE_DIR / "partial").exists()


def test_json_lines_and_a_second_run_skips_what_is_done(tmp_path: Path, sources: Path) -> None:
    out = tmp_path / "out"
    _invoke(str(sources), str(out), *FAST)
    code, stdout, stderr = _invoke(str(sources), str(out), *FAST, "--json")
    assert code == 1, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    by_name = {Path(line["source"]).name: line for line in lines}
    assert {name: line["status"] for name, line in by_name.items()} == {
        "a.mp4": "skipped",
        "broken.mp4": "failed",
        "notes.txt": "skipped",
        "b.mkv": "skipped",
    }
    assert by_name["a.mp4"]["reason"] == "already done with these settings"
    assert by_name["a.mp4"]["output"] == str(out / "a.mp4")
    assert by_name["notes.txt"]["output"] is None
    # The table goes to stderr, so stdout is only JSON.
    assert "0 done, 3 skipped, 1 failed" in stderr


def test_changed_settings_redo_a_file(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_clip(source / "a.mp4", frames=2, fps=6)
    out = tmp_path / "out"
    assert _invoke(str(source), str(out), *FAST)[0] == 0
    code, stdout, stderr = _invoke(str(source), str(out), *FAST, "--crf", "30", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["status"] == "done"
    code, stdout, stderr = _invoke(str(source), str(out), *FAST, "--crf", "30", "--json")
    assert json.loads(stdout)["status"] == "skipped"


def test_upres_toml_applies_below_its_folder_and_options_win(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "enhance").mkdir(parents=True)
    make_clip(source / "plain.mp4", frames=2, fps=6)
    make_clip(source / "enhance" / "kept.mp4", frames=2, fps=6)
    (source / "enhance" / "upres.toml").write_text("factor = 1\n")
    no_factor = [a for a in FAST if a not in ("--factor", "1")]
    code, _, stderr = _invoke(str(source), str(tmp_path / "out"), *no_factor)
    assert code == 0, stderr
    assert _size(tmp_path / "out" / "enhance" / "kept.mp4") == (64, 48)
    assert _size(tmp_path / "out" / "plain.mp4") == (128, 96)
    # --factor on the command line wins over the folder's file.
    code, _, stderr = _invoke(
        str(source / "enhance"), str(tmp_path / "x2"), *no_factor, "--factor", "2"
    )
    assert code == 0, stderr
    assert _size(tmp_path / "x2" / "kept.mp4") == (128, 96)


def test_a_bad_upres_toml_fails_the_files_below_it(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_clip(source / "a.mp4", frames=2, fps=6)
    (source / "upres.toml").write_text("factr = 2\n")
    code, stdout, _ = _invoke(str(source), str(tmp_path / "out"), *FAST, "--json")
    assert code == 1
    (line,) = [json.loads(text) for text in stdout.splitlines()]
    assert line["status"] == "failed"
    assert "unknown key 'factr'" in line["reason"]


def test_a_file_upres_did_not_write_is_kept_unless_overwrite(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_clip(source / "a.mp4", frames=2, fps=6)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"mine")
    code, stdout, _ = _invoke(str(source), str(out), *FAST, "--json")
    assert code == 1
    assert "upres did not write it" in json.loads(stdout)["reason"]
    assert (out / "a.mp4").read_bytes() == b"mine"
    code, _, stderr = _invoke(str(source), str(out), *FAST, "--overwrite")
    assert code == 0, stderr
    assert _size(out / "a.mp4") == (64, 48)


def test_files_and_globs_as_sources(tmp_path: Path) -> None:
    make_clip(tmp_path / "one.mp4", frames=2, fps=6)
    make_clip(tmp_path / "two.mp4", frames=2, fps=6)
    write_not_a_video(tmp_path / "three.mp4")
    out = tmp_path / "out"
    code, stdout, _ = _invoke(str(tmp_path / "one.mp4"), str(tmp_path / "t*.mp4"), str(out), *FAST)
    assert code == 1
    assert _tree(out) == ["one.mp4", "two.mp4"]
    assert "2 done, 0 skipped, 1 failed" in stdout


def test_an_output_folder_inside_the_source_folder_is_not_searched(tmp_path: Path) -> None:
    make_clip(tmp_path / "a.mp4", frames=2, fps=6)
    out = tmp_path / "upscaled"
    assert _invoke(str(tmp_path), str(out), *FAST)[0] == 0
    code, stdout, _ = _invoke(str(tmp_path), str(out), *FAST, "--json")
    assert code == 0
    assert [json.loads(line)["source"] for line in stdout.splitlines()] == [str(tmp_path / "a.mp4")]


def test_batch_options_need_an_output_folder(tmp_path: Path) -> None:
    code, _, _ = _invoke("in.mp4", str(tmp_path / "out.mp4"), "--json")
    assert code == 2


def test_a_folder_into_a_file_name_says_to_name_a_folder(tmp_path: Path) -> None:
    code, _, stderr = _invoke(str(tmp_path), str(tmp_path / "out.mp4"))
    assert code == 2
    # Typer draws usage errors in a box, wrapped to the terminal's width.
    words = " ".join(re.sub("[│╭╮╰╯─]", " ", stderr).split())
    assert "is a folder: give a folder to write into" in words


@pytest.mark.slow
def test_a_batch_killed_mid_file_carries_on_where_it_stopped(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_clip(source / "1-short.mp4", frames=2, fps=6)
    # Long enough (15 s) that its progress shows before it ends, on any machine.
    make_clip(source / "2-long.mp4", frames=360, fps=24)
    make_clip(source / "3-short.mp4", frames=2, fps=6)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "upres.cli", "upscale", str(source), str(out), *FAST]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    try:
        # Until the long file's frames are under way (its first progress line).
        for line in child.stderr:
            if line.startswith("[2-long.mp4] frames"):
                break
        else:
            raise AssertionError("the long file never started")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        child.stderr.close()
    assert _tree(out) == ["1-short.mp4"]
    # The killed run left its work in the manifest's folder, not beside the outputs.
    assert list((out / STATE_DIR / "partial").iterdir())
    first = (out / "1-short.mp4").stat().st_mtime_ns

    code, stdout, stderr = _invoke(str(source), str(out), *FAST, "--json")
    assert code == 0, stderr
    statuses = {Path(j["source"]).name: j["status"] for j in map(json.loads, stdout.splitlines())}
    assert statuses == {"1-short.mp4": "skipped", "2-long.mp4": "done", "3-short.mp4": "done"}
    assert (out / "1-short.mp4").stat().st_mtime_ns == first
    assert _tree(out) == ["1-short.mp4", "2-long.mp4", "3-short.mp4"]
    assert not (out / STATE_DIR / "partial").exists()


@pytest.mark.slow
def test_a_long_file_killed_mid_chunks_keeps_its_finished_chunks(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    # 8 s with a keyframe every 0.5 s: sixteen chunks of 0.5 s.
    make_clip(source / "long.mp4", frames=96, fps=12, encoder_options={"g": "6"})
    out = tmp_path / "out"
    args = [str(source), str(out), *FAST, "--workers", "2", "--chunk-seconds", "0.5"]
    command = [sys.executable, "-m", "upres.cli", "upscale", *args]
    child = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
    kept_folder = out / STATE_DIR / "chunks"
    deadline = time.monotonic() + 300
    while len(list(kept_folder.glob("*/chunk-*.mp4"))) < 2:
        assert time.monotonic() < deadline, "no two chunks were finished in time"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)  # the command and its chunk workers: a crash
    child.wait(30)
    kept = list(kept_folder.glob("*/chunk-*.mp4"))
    assert _tree(out) == []

    code, stdout, stderr = _invoke(*args, "--json")
    assert code == 0, stderr
    (line,) = map(json.loads, stdout.splitlines())
    assert line["status"] == "done", line
    reused = re.search(r"(\d+) of 16 chunks were kept from an interrupted run", line["reason"])
    assert reused is not None, line["reason"]
    assert int(reused[1]) >= len(kept) >= 2
    with av.open(str(out / "long.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 96
    assert not any(kept_folder.iterdir())  # the file is done: its chunks went
