"""The throughput and encoder benches run end to end on tiny clips (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bench import _report, encoder, media, throughput
from bench._flops import (
    basicvsr_macs,
    counted_macs,
    formula_macs,
    realcugan_macs,
    rrdbnet_macs,
    spynet_macs,
)
from torch.utils.flop_counter import FlopCounterMode

from upres.models import realcugan
from upres.models.basicvsr import BasicVSR
from upres.models.loader import ModelCache
from upres.models.registry import MODELS, get_model
from upres.models.specs import Architecture

KINDS = {"decode", "encode", "model", "e2e", "baseline"}


@pytest.mark.slow
def test_harness_measures_every_stage_of_a_tiny_clip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nHand-written plan.\n")
    argv = ["--models", "realesr-animevideov3", "--sizes", "64x36", "--factors", "2"]
    argv += ["--frames", "2", "--length-check", "2", "--torch-threads", "1"]
    argv += ["--ceiling-seconds", "0.05", "--clips", str(tmp_path), "--doc", str(doc), "--json"]

    assert throughput.main(argv) == 0

    result = json.loads(capsys.readouterr().out)
    (row,) = result["rows"]
    assert set(row["fps"]) == KINDS
    assert all(fps > 0 for fps in row["fps"].values())
    assert row["vs_baseline"]["baseline"] == pytest.approx(1.0)
    e2e = row["results"]["e2e"]
    assert (e2e["frames"], e2e["out_width"], e2e["out_height"]) == (2, 128, 72)
    assert row["longer"]["frames"] == 4
    assert e2e["peak_rss_mb"] >= e2e["warm_rss_mb"] > 0
    assert result["ceiling"]["tflops"] > 0
    text = doc.read_text()
    assert "Hand-written plan." in text
    assert "<!-- throughput:cpu begin -->" in text
    assert "| realesr-animevideov3 | 2 | 64x36 -> 128x72 | 2 |" in text
    # The same run compares the CPU runtimes on that frame, alternating.
    assert "<!-- throughput:cpu-runtimes begin -->" in text
    assert "| realesr-animevideov3 | 64x36 | 3 |" in text
    # And times RIFE per synthesised frame at the same size.
    assert "<!-- interpolation:cpu begin -->" in text
    assert "| 64x36 (64x36) |" in text


def test_writing_twice_replaces_the_section(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nintro\n")
    machine = _report.machine(torch.device("cpu"))
    empty = _report.Document(machine=machine, ceiling=None, rows=())
    _report.write(doc, empty)
    _report.write(doc, empty)
    text = doc.read_text()
    assert text.count("<!-- throughput:cpu begin -->") == 1
    assert text.startswith("# Benchmarks\n\nintro\n")


@pytest.mark.slow
def test_flop_formulas_match_the_loaded_networks() -> None:
    models = ModelCache()
    esrgan = (Architecture.RRDBNET, Architecture.SRVGG_COMPACT)
    for spec in (spec for spec in MODELS if spec.architecture in esrgan):
        assert counted_macs(spec, models, side=8) == formula_macs(spec), spec.id
    assert 2 * rrdbnet_macs() / 16 == 2_240_856  # FLOP per output pixel quoted in the docs


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["realcugan-se-x2", "realcugan-se-x3", "realcugan-se-x4"])
def test_realcugan_flop_formula_is_the_count_without_the_border(model_id: str) -> None:
    spec = get_model(model_id)
    side = 64
    counted = counted_macs(spec, ModelCache(), side=side)
    # The reflected border costs more than nothing and less than the padded frame's area.
    border = (1 + 2 * realcugan.PREPADDING[spec.scale] / side) ** 2
    assert formula_macs(spec) < counted < formula_macs(spec) * border
    # FLOP per output pixel quoted in the docs.
    quoted = {2: 385_008, 3: 356_423, 4: 133_868}[spec.scale]
    assert 2 * realcugan_macs(scale=spec.scale) // spec.scale**2 == quoted


def test_basicvsr_formula_matches_torchs_flop_counter() -> None:
    """On the meta device (no arithmetic runs): a window of 4 frames makes 7 flows (a
    window's first frame has no forward neighbour), 2 per frame otherwise."""
    frames, side = 4, 64
    with torch.device("meta"):
        network = BasicVSR().eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            network(torch.rand(frames, 3, side, side))
    macs = counter.get_total_flops() // 2
    # The formula rounds SpyNet's pyramid (4/3 of the top level) to whole MACs per pixel.
    expected = (basicvsr_macs() * frames - spynet_macs()) * side * side
    assert macs == pytest.approx(expected, rel=1e-6)
    assert 2 * basicvsr_macs() / 16 == pytest.approx(812_925, abs=1)  # quoted in the docs


def test_encoder_bench_scores_each_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nHand-written plan.\n")
    argv = ["--size", "64x36", "--frames", "3", "--source", "bicubic", "--threads", "1"]
    argv += ["--configs", "h264:ultrafast,h264:medium", "--clips", str(tmp_path), "--doc", str(doc)]

    assert encoder.main(argv) == 0

    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| h264")]
    assert [row.split(" | ")[1] for row in rows] == ["ultrafast", "medium"]
    for row in rows:
        psnr_y = float(row.split(" | ")[6])
        assert 30.0 < psnr_y < 70.0
    text = doc.read_text()
    assert "Hand-written plan." in text
    assert "<!-- throughput:encoder begin -->" in text
    assert "upscaled 4x by bicubic -> 256x144" in text


def test_encoder_bench_refuses_an_unknown_codec() -> None:
    with pytest.raises(ValueError, match="<codec>:<preset>"):
        encoder.parse_configs("vp9:good", [1])


@pytest.mark.slow
def test_media_bench_writes_its_section_and_quality_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "QUALITY.md"
    doc.write_text("# Output quality\n\nWritten by bench/quality.py.\n")

    assert media.main(["--doc", str(doc), "--frames", "2"]) == 0

    text = doc.read_text()
    assert text.startswith("# Output quality")
    assert "| Y |" in text
    assert "<!-- bench:media end -->" in text
    assert (tmp_path / media.CROP_NAME).stat().st_size > 0
    kept = _report.section(text, "bench:media")
    assert kept is not None
    regenerated = _report.with_section("# Regenerated\n", "bench:media", kept)
    assert _report.section(regenerated, "bench:media") == kept
    assert regenerated.count("<!-- bench:media begin -->") == 1


@pytest.mark.slow
def test_video_quality_bench_scores_a_method_and_its_prefiltered_twin(tmp_path: Path) -> None:
    from bench import video_quality  # noqa: PLC0415 (films its clips; only this test needs it)

    doc = tmp_path / "QUALITY.md"
    doc.write_text("# Output quality\n")
    argv = ["--low", "8", "--frames", "2", "--cases", "4:h264", "--cache", str(tmp_path / "c")]
    argv += ["--methods", "bicubic,bicubic+deblock", "--doc", str(doc)]
    assert video_quality.main(argv) == 0
    table = _report.section(doc.read_text(), "bench:video-quality")
    assert table is not None
    assert "| bicubic | " in table
    assert "| bicubic+deblock | " in table
    assert (tmp_path / video_quality.CROP).stat().st_size > 0


@pytest.mark.slow
def test_api_load_bench_runs_both_servers_and_writes_its_section(tmp_path: Path) -> None:
    from bench import api_load  # noqa: PLC0415 (starts servers; only this test needs it)

    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nHand-written plan.\n")
    argv = ["--seconds", "0.3", "--clients", "1,2", "--probes", "2", "--probe-clients", "1"]
    assert api_load.main([*argv, "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "Hand-written plan." in text
    assert "<!-- throughput:api begin -->" in text
    assert "| 2 |" in text
    assert "submissions wait on a URL that never answers" in text
