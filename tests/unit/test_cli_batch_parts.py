"""The batch's parts without a video run: upres.toml precedence, the manifest's
rules, and the display on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress as ProgressBar
from rich.progress import TextColumn

from upres.cli.batch_display import BatchDisplay, Outcome, Status
from upres.cli.choices import Options, RunOptions, choose
from upres.cli.discover import Found, Verdict
from upres.cli.folder_settings import FolderSettings
from upres.cli.manifest import Manifest, opened
from upres.config import Settings
from upres.domain.tasks import Factor
from upres.errors import InvalidRequest
from upres.pipeline.video_run import Progress


def test_the_nearest_upres_toml_sets_each_key(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "upres.toml").write_text('factor = 4\ncodec = "h265"\n')
    (tmp_path / "a" / "b" / "upres.toml").write_text("factor = 1\ntemporal = false\n")
    video = tmp_path / "a" / "b" / "clip.mp4"
    options = FolderSettings().options_for(video, tmp_path)
    assert options == Options(factor=1, codec="h265", temporal=False)
    # Above the SOURCE folder nothing applies.
    assert FolderSettings().options_for(video, tmp_path / "a") == Options(factor=1, temporal=False)


def test_an_option_beats_upres_toml_which_beats_the_environment(tmp_path: Path) -> None:
    (tmp_path / "upres.toml").write_text('codec = "h265"\ncrf = 30\n')
    folder = FolderSettings().options_for(tmp_path / "clip.mp4", tmp_path)
    settings = Settings(encode_codec="av1", encode_crf=40, temporal=False)
    run = RunOptions(chunk_seconds=60.0)
    chosen = choose(Options(crf=20).over(folder), run, settings)
    assert (chosen.encode.codec, chosen.encode.crf) == ("h265", 20)
    assert (chosen.factor, chosen.temporal) == (Factor.X2, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("factor = 3\n", "factor must be 1, 2 or 4"),
        ("factor = true\n", "factor must be a int"),
        ('codec = "vp9"\n', "unknown codec 'vp9'"),
        ("speed = 2\n", "unknown key 'speed'"),
        ("factor = \n", "Invalid value"),
    ],
)
def test_a_bad_upres_toml_is_named_in_the_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "upres.toml").write_text(text)
    with pytest.raises(InvalidRequest, match=r"upres\.toml") as caught:
        FolderSettings().options_for(tmp_path / "clip.mp4", tmp_path)
    assert message in str(caught.value)


def test_the_manifest_knows_what_it_finished_and_what_it_wrote(tmp_path: Path) -> None:
    output = tmp_path / "a.mp4"
    identity = {"source": "/x/a.mp4", "settings": {"factor": 2}}
    with opened(tmp_path) as manifest:
        assert not manifest.wrote(output)
        manifest.start(output, identity, upload_url="upres-upload://u")
        assert manifest.wrote(output)  # being written: upres's to replace
        output.write_bytes(b"result")
        manifest.finish(output, identity)
        assert manifest.is_done(output, identity)
        assert not manifest.is_done(output, {**identity, "settings": {"factor": 4}})
    # A new run reads it back; a file changed since is no longer upres's.
    with opened(tmp_path) as manifest:
        assert manifest.is_done(output, identity)
        output.write_bytes(b"edited by hand")
        assert not manifest.wrote(output)
        assert not manifest.is_done(output, identity)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    with opened(tmp_path):
        Manifest(tmp_path)  # reading it is fine; holding it twice is not
        with pytest.raises(InvalidRequest, match="Another upres run"), opened(tmp_path):
            pass


def test_a_manifest_from_elsewhere_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".upres").mkdir()
    (tmp_path / ".upres" / "manifest.json").write_text('{"version": 99}')
    with pytest.raises(InvalidRequest, match="not a manifest"), opened(tmp_path):
        pass


def test_the_terminal_display_follows_the_batch(tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=500)
    found = [
        Found(
            source=tmp_path / "a.mp4",
            relative=Path("a.mp4"),
            root=tmp_path,
            verdict=Verdict.VIDEO,
            frames=10,
        ),
        Found(
            source=tmp_path / "b.txt",
            relative=Path("b.txt"),
            root=tmp_path,
            verdict=Verdict.NOT_A_VIDEO,
            reason="not a video",
        ),
    ]
    with ProgressBar(TextColumn("{task.fields[label]}"), console=console) as bar:
        display = BatchDisplay(found, json_lines=False, bar=bar)
        display.start(0, found[0])
        display.working()
        display.frames(Progress(frames_done=5, frames_total=10, elapsed_s=1.0, fps=5.0))
        done = Outcome(
            source=found[0].source,
            output=tmp_path / "o.mp4",
            status=Status.DONE,
            reason="wrote it",
            frames=10,
        )
        display.finished(done)
        display.start(1, found[1])
        display.finished(
            Outcome(
                source=found[1].source, output=None, status=Status.SKIPPED, reason="not a video"
            )
        )
    assert f"done    {found[0].source} -> {tmp_path / 'o.mp4'}: wrote it" in screen.getvalue()
    assert "files 2/2" in screen.getvalue()
    assert [o.status for o in display.outcomes] == [Status.DONE, Status.SKIPPED]
