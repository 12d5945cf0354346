"""The surface of one video run: what it is asked, what it calls back, what it returns.

The whole-file pass (``engine.upscale_video``), one chunk (``chunks.upscale_chunk``),
the join (``join.join_chunks``) and their callers (the CLI, the task and chunk
runners) share these three types, so a new option, hook or reported fact is
added here once and reaches every path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from upres.domain.framerate import UNCHANGED, FrameRateRequest
from upres.domain.media import EncodeSettings, MediaLimits, VideoCodec, VideoInfo
from upres.pipeline.fields import FieldScan
from upres.pipeline.interpolate import FrameRateStage
from upres.pipeline.stages import CancelToken


@dataclass(frozen=True, kw_only=True)
class Progress:
    """How far one upscale is. ``frames_total`` is an estimate (None when unknown);
    ``frame_mpx`` the output megapixels of one frame (None when unknown)."""

    frames_done: int
    frames_total: int | None
    elapsed_s: float
    fps: float
    frame_mpx: float | None = None


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """How a source is read and written; every chunk of a source and its join must
    be given the same ones, or the join refuses the parts.

    ``hardware_decode`` None uses CUDA decoding when a GPU is present;
    ``double_rate`` deinterlaces to one frame per field; ``frame_rate`` retimes
    the output (``upres.pipeline.interpolate``; None: the source's timing).
    """

    encode: EncodeSettings
    limits: MediaLimits
    double_rate: bool = False
    hardware_decode: bool | None = None
    frame_rate: FrameRateStage | None = None

    @property
    def frame_rate_request(self) -> FrameRateRequest:
        """What ``frame_rate`` asks (UNCHANGED without one): all a join needs."""
        return self.frame_rate.request if self.frame_rate is not None else UNCHANGED


@dataclass(frozen=True, kw_only=True)
class VideoHooks:
    """What a run calls back, all optional.

    ``on_progress`` after each written batch (whatever it raises stops the run);
    ``on_frame`` with the last upscaled frame of each batch, (H, W, 3) on the
    CPU, in the upscaling thread (it must be quick and must not keep it);
    ``cancel`` is checked between batches.
    """

    on_progress: Callable[[Progress], None] | None = None
    on_frame: Callable[[torch.Tensor], None] | None = None
    cancel: CancelToken | None = None


NO_HOOKS = VideoHooks()


@dataclass(frozen=True, kw_only=True)
class VideoResult:
    """What a run wrote under ``path``.

    ``skipped_packets``/``concealed_frames`` count damage in the input (see
    ``upres.pipeline.decode``) and ``hardware_decoded`` is True when CUDA
    decoding was used: a join decodes nothing, so its own are 0 and False
    (``with_chunks`` adds its chunks'). ``dropped_streams`` lists source
    streams the output cannot carry (a chunk's part carries none: always
    empty); ``notes`` say what upres decided for the user (codec, deinterlacing);
    ``chunks`` is how many chunks were joined into it (1: one pass).
    """

    info: VideoInfo
    path: Path
    frames: int
    width: int
    height: int
    codec: VideoCodec
    fields: FieldScan
    notes: tuple[str, ...]
    output_bytes: int
    elapsed_s: float
    skipped_packets: int
    concealed_frames: int
    dropped_streams: tuple[str, ...]
    hardware_decoded: bool
    chunks: int = 1

    def with_chunks(self, chunks: tuple[VideoResult, ...], *, elapsed_s: float) -> VideoResult:
        """This join's result with what decoding its ``chunks`` found, over ``elapsed_s``."""
        return replace(
            self,
            elapsed_s=elapsed_s,
            skipped_packets=sum(c.skipped_packets for c in chunks),
            concealed_frames=sum(c.concealed_frames for c in chunks),
            hardware_decoded=any(c.hardware_decoded for c in chunks),
            chunks=len(chunks),
        )
