"""upscale_video: the streaming engine end to end, its errors, cancellation and cleanup."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import av
import pytest
import torch

from tests.clips import make_clip
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.errors import Cancelled, InvalidRequest, ModelError
from upres.models.registry import get_model
from upres.pipeline.engine import CancelToken, upscale_video
from upres.pipeline.upscale import InterpolationUpscaler, ModelUpscaler
from upres.pipeline.video_run import Progress, VideoHooks, VideoOptions

FAST = EncodeSettings(preset="ultrafast")
# A stage that has not moved after this long is stuck, not slow.
STUCK_S = 30.0


class Nearest:
    """A FrameUpscaler repeating pixels; ``fail_on`` injects a fault, ``on_call`` sees
    each call's number (1 first) on the upscale stage's thread before it is answered."""

    def __init__(
        self,
        scale: int = 2,
        batch: int = 4,
        fail_on: int | None = None,
        on_call: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._scale, self._batch = scale, batch
        self.fail_on, self.on_call = fail_on, on_call
        self.calls = 0

    @property
    def factor(self) -> int:
        return self._scale

    @property
    def batch_size(self) -> int:
        return self._batch

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_on:
            raise ModelError("injected model failure")
        self.on_call(self.calls)
        return pixels.repeat_interleave(self._scale, 1).repeat_interleave(self._scale, 2)


class WrongShape(Nearest):
    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels


def _stream_facts(path: Path) -> tuple[list[float], float, bool]:
    """Frame times, video duration, and whether there is audio."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        duration = float(video.duration * video.time_base) if video.duration else 0.0
        has_audio = bool(container.streams.audio)
        times = [float(f.time) for f in container.decode(video)]
    return times, duration, has_audio


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "in.mp4")


def _stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("upres-")]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "in.mp4", frames=12)


def test_upscales_every_frame_at_its_time(tmp_path: Path, clip: Path) -> None:
    progress: list[Progress] = []
    result = upscale_video(
        source=clip,
        destination=tmp_path / "out.mp4",
        upscaler=Nearest(scale=2, batch=5),
        options=VideoOptions(encode=FAST, limits=MediaLimits()),
        hooks=VideoHooks(on_progress=progress.append),
    )
    assert (result.width, result.height, result.frames) == (128, 96, 12)
    assert result.output_bytes == (tmp_path / "out.mp4").stat().st_size
    assert result.info.width == 64
    assert _stream_facts(tmp_path / "out.mp4") == _stream_facts(clip)
    assert [p.frames_done for p in progress] == [5, 10, 12]
    assert all(p.frames_total == 12 and p.fps > 0 for p in progress)
    assert _leftovers(tmp_path) == ["out.mp4"]


def test_vfr_stays_vfr(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", vfr=True, frames=12)
    upscale_video(
        source=source,
        destination=tmp_path / "out.mp4",
        upscaler=InterpolationUpscaler(Factor.X2),
        options=VideoOptions(encode=FAST, limits=MediaLimits()),
    )
    times, duration, _ = _stream_facts(tmp_path / "out.mp4")
    source_times, source_duration, _ = _stream_facts(source)
    assert len(set(round(b - a, 3) for a, b in itertools.pairwise(times))) == 2
    assert times == pytest.approx(source_times)
    assert duration == pytest.approx(source_duration)


def test_cancel_between_batches_leaves_nothing(tmp_path: Path, clip: Path) -> None:
    token = CancelToken()
    with pytest.raises(Cancelled):
        upscale_video(
            source=clip,
            destination=tmp_path / "out.mp4",
            upscaler=Nearest(batch=2),
            options=VideoOptions(encode=FAST, limits=MediaLimits()),
            hooks=VideoHooks(on_progress=lambda _: token.cancel(), cancel=token),
        )
    assert token.is_cancelled
    assert _leftovers(tmp_path) == []
    assert _stage_threads() == []


def test_cancel_from_another_thread_stops_a_slow_run(tmp_path: Path, clip: Path) -> None:
    token = CancelToken()
    second_batch, cancelled = threading.Event(), threading.Event()

    def cancel_at_the_second_batch() -> None:
        if second_batch.wait(STUCK_S):
            token.cancel()
        cancelled.set()

    def pause_at_the_second(call: int) -> None:
        if call == 2:
            second_batch.set()
            cancelled.wait(STUCK_S)

    canceller = threading.Thread(target=cancel_at_the_second_batch)
    canceller.start()
    upscaler = Nearest(batch=1, on_call=pause_at_the_second)
    with pytest.raises(Cancelled):
        upscale_video(
            source=clip,
            destination=tmp_path / "out.mp4",
            upscaler=upscaler,
            options=VideoOptions(encode=FAST, limits=MediaLimits()),
            hooks=VideoHooks(cancel=token),
        )
    canceller.join()
    assert upscaler.calls == 2  # not one batch after the cancel, of 12
    assert _leftovers(tmp_path) == []
    assert _stage_threads() == []


def test_a_model_error_stops_every_stage(tmp_path: Path, clip: Path) -> None:
    with pytest.raises(ModelError, match="injected"):
        upscale_video(
            source=clip,
            destination=tmp_path / "out.mp4",
            upscaler=Nearest(batch=2, fail_on=3),
            options=VideoOptions(encode=FAST, limits=MediaLimits()),
        )
    assert _leftovers(tmp_path) == []
    assert _stage_threads() == []


def test_an_upscaler_returning_the_wrong_shape_is_a_model_error(tmp_path: Path, clip: Path) -> None:
    with pytest.raises(ModelError, match="scale 2"):
        upscale_video(
            source=clip,
            destination=tmp_path / "out.mp4",
            upscaler=WrongShape(),
            options=VideoOptions(encode=FAST, limits=MediaLimits()),
        )
    assert _leftovers(tmp_path) == []


def test_an_error_raised_by_the_progress_callback_propagates(tmp_path: Path, clip: Path) -> None:
    class LeaseGoneError(Exception):
        pass

    def report(progress: Progress) -> None:
        raise LeaseGoneError

    with pytest.raises(LeaseGoneError):
        upscale_video(
            source=clip,
            destination=tmp_path / "out.mp4",
            upscaler=Nearest(),
            options=VideoOptions(encode=FAST, limits=MediaLimits()),
            hooks=VideoHooks(on_progress=report),
        )
    assert _leftovers(tmp_path) == []
    assert _stage_threads() == []


def test_an_unwritable_destination_is_refused_before_any_work(tmp_path: Path, clip: Path) -> None:
    with pytest.raises(InvalidRequest, match="missing-dir does not exist"):
        upscale_video(
            source=clip,
            destination=tmp_path / "missing-dir" / "out.mp4",
            upscaler=Nearest(),
            options=VideoOptions(encode=FAST, limits=MediaLimits()),
        )
    assert _leftovers(tmp_path) == []
    assert _stage_threads() == []


def test_stages_overlap(tmp_path: Path) -> None:
    """Inference and encoding run at the same time: while the encoding side is busy
    with one batch, the model starts on the next."""
    source = make_clip(tmp_path / "in.mp4", frames=16)
    started = [threading.Event() for _ in range(9)]
    upscaler = Nearest(batch=2, on_call=lambda call: started[call].set())
    overlapped: list[bool] = []

    def busy_encoding(progress: Progress) -> None:
        if progress.frames_done < 16:
            # Batch k was encoded; in a sequential pipeline batch k+1 would wait for this.
            overlapped.append(started[progress.frames_done // 2 + 1].wait(STUCK_S))

    upscale_video(
        source=source,
        destination=tmp_path / "out.mp4",
        upscaler=upscaler,
        options=VideoOptions(encode=FAST, limits=MediaLimits()),
        hooks=VideoHooks(on_progress=busy_encoding),
    )
    assert upscaler.calls == 8
    assert overlapped == [True] * 7


@pytest.mark.slow
@pytest.mark.parametrize("factor", [Factor.ENHANCE, Factor.X2, Factor.X4])
def test_real_model_end_to_end(tmp_path: Path, factor: Factor) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=4, fps=4)
    upscaler = ModelUpscaler(get_model("realesr-animevideov3"), factor, device="cpu")
    result = upscale_video(
        source=source,
        destination=tmp_path / "out.mp4",
        upscaler=upscaler,
        options=VideoOptions(encode=FAST, limits=MediaLimits()),
    )
    assert (result.width, result.height) == (64 * factor, 48 * factor)
    times, _, has_audio = _stream_facts(tmp_path / "out.mp4")
    assert times == _stream_facts(source)[0]
    assert has_audio


def test_a_directory_in_the_way_is_refused_before_any_work(tmp_path: Path, clip: Path) -> None:
    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(InvalidRequest, match=r"out\.mp4: it is a directory"):
        upscale_video(
            source=clip,
            destination=tmp_path / "out.mp4",
            upscaler=Nearest(),
            options=VideoOptions(encode=FAST, limits=MediaLimits()),
        )
    assert _leftovers(tmp_path) == ["out.mp4"]
    assert list((tmp_path / "out.mp4").iterdir()) == []


def test_matroska_input_becomes_an_mp4_with_the_same_frames(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mkv", container="matroska", vfr=True)
    output = tmp_path / "out.mp4"
    upscale_video(
        source=source,
        destination=output,
        upscaler=Nearest(),
        options=VideoOptions(encode=FAST, limits=MediaLimits()),
    )
    with av.open(str(output)) as container:
        assert "mp4" in container.format.name
    times, _, has_audio = _stream_facts(output)
    assert times == pytest.approx(_stream_facts(source)[0])
    assert has_audio
