"""BasicVSR as a pipeline stage: windows against the whole clip, tiles, chunks, the CLI."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
import torch
from skimage import data
from typer.testing import CliRunner

from tests.clips import make_clip
from upres.cli import build_app
from upres.domain.tasks import Factor
from upres.models.registry import get_model
from upres.pipeline.bidirectional import BidirectionalUpscaler
from upres.pipeline.chunks import DEFAULT_PRE_ROLL, pre_roll_for
from upres.pipeline.recurrent import RecurrentNetworks, model_upscaler

SPEC = get_model("basicvsr-vimeo90k-bi")


@pytest.fixture(scope="module")
def networks() -> RecurrentNetworks:
    return RecurrentNetworks()


def _pan(frames: int, height: int, width: int) -> torch.Tensor:
    """(T, H, W, 3) uint8: a photo panning one pixel right per frame."""
    photo = torch.from_numpy(data.astronaut()[200:, 100:].copy())
    return torch.stack([photo[:height, t : t + width] for t in range(frames)]).contiguous()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    if mse == 0:
        return float("inf")
    return 10.0 * torch.log10(torch.tensor(255.0**2 / mse)).item()


def _stage(networks: RecurrentNetworks, **options: int) -> BidirectionalUpscaler:
    return BidirectionalUpscaler(SPEC, Factor.X4, networks=networks, device="cpu", **options)


def _in_batches(stage: BidirectionalUpscaler, frames: torch.Tensor) -> torch.Tensor:
    step = stage.batch_size
    return torch.cat([stage.upscale(frames[i : i + step]) for i in range(0, len(frames), step)])


@pytest.mark.slow
def test_windows_agree_with_the_whole_clip(networks: RecurrentNetworks) -> None:
    frames = _pan(4, 12, 12)
    whole = _stage(networks, window=4).upscale(frames)
    windowed = _in_batches(_stage(networks, window=2), frames)
    assert windowed.shape == whole.shape == (4, 48, 48, 3)
    # The last window ends where the clip does: its last frame is the same.
    assert torch.equal(windowed[-1], whole[-1])
    # The first window's last frame lacks the backward branch's later frames; the
    # second window keeps the forward branch (docs/QUALITY.md has the PSNR cost).
    assert min(_psnr(w, x) for w, x in zip(windowed, whole, strict=True)) > 30.0


@pytest.mark.slow
def test_tiles_agree_with_the_whole_frame(networks: RecurrentNetworks) -> None:
    frames = _pan(2, 12, 136)
    whole = _stage(networks, tile_size=512).upscale(frames)
    tiled_stage = _stage(networks, tile_size=128)
    tiled = tiled_stage.upscale(frames)
    assert tiled.shape == whole.shape == (2, 48, 544, 3)
    assert _psnr(tiled, whole) > 35.0
    assert len(tiled_stage._carries) == 2  # one carry per tile


@pytest.mark.parametrize("factor", [Factor.X2, Factor.ENHANCE])
def test_smaller_factors_keep_the_shape_and_dtype(
    networks: RecurrentNetworks, factor: Factor
) -> None:
    frames = (_pan(2, 10, 14).to(torch.int32) * 257).to(torch.uint16)
    stage = model_upscaler(SPEC, factor, device="cpu", networks=networks)
    out = stage.upscale(frames)
    assert out.shape == (2, 10 * int(factor), 14 * int(factor), 3)
    assert out.dtype == torch.uint16


def test_a_chunk_primes_the_forward_branch(networks: RecurrentNetworks) -> None:
    assert pre_roll_for(_stage(networks)) == DEFAULT_PRE_ROLL


@pytest.mark.slow
def test_upscale_with_a_basicvsr_model(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", width=24, height=16, frames=3, fps=6)
    output = tmp_path / "out.mp4"
    args = [str(source), str(output), "--factor", "2", "--model", SPEC.id, "--device", "cpu"]
    result = CliRunner().invoke(build_app(), ["upscale", *args])
    assert result.exit_code == 0, result.stderr
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (48, 32)
        assert sum(1 for _ in container.decode(video)) == 3
