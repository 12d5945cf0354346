"""What frame rate an output runs at, and how much slower: the request and its limits. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from upres.errors import InvalidRequest

# The highest output rate: beyond it displays show no difference and the cost grows.
MAX_FRAME_RATE = Fraction(120)
SLOWMO_FACTORS = (1, 2, 4, 8)
# A rate within this share of n * 1000/1001 (23.976, 29.97, 59.94, 119.88) is that NTSC
# rate; the whole rates next to them are 1000 times as far.
_NTSC_TOLERANCE = 1e-5
_NTSC = Fraction(1000, 1001)


@dataclass(frozen=True, kw_only=True)
class FrameRateRequest:
    """The output's rate (None: the source's average rate) and slow-motion factor.

    Frame ``k`` of the output is shown at ``k / rate`` after the first and
    shows the source at ``k / (rate * slowmo)`` after its first frame.
    """

    fps: Fraction | None = None
    slowmo: int = 1

    @property
    def retimes(self) -> bool:
        """Whether frames are synthesised at all (False: the source's timing is kept)."""
        return self.fps is not None or self.slowmo != 1


UNCHANGED = FrameRateRequest()


def frame_rate_request(
    *, fps: float | Fraction | None, slowmo: int = 1, source_fps: Fraction | None = None
) -> FrameRateRequest:
    """The request for ``fps`` frames per second ``slowmo`` times slower, checked.

    ``source_fps`` (the source's average rate, when known) adds the check that
    no source frame is dropped: ``fps * slowmo`` at least ``source_fps``.
    Without it only the fixed limits are checked (before the source is probed).
    Raises InvalidRequest (param ``frame_rate`` or ``slowmo``) and changes nothing.
    """
    if slowmo not in SLOWMO_FACTORS:
        choices = ", ".join(str(n) for n in SLOWMO_FACTORS)
        raise InvalidRequest(f"slowmo must be one of {choices}, got {slowmo}", param="slowmo")
    if fps is None:
        return FrameRateRequest(slowmo=slowmo)
    rate = exact_rate(fps)
    if not 0 < rate <= MAX_FRAME_RATE:
        raise InvalidRequest(
            f"frame rate must be above 0 and at most {MAX_FRAME_RATE} fps, got {float(fps):g}",
            param="frame_rate",
        )
    if source_fps and rate * slowmo < source_fps:
        raise InvalidRequest(
            f"frame rate {float(rate):g} fps is below the source's {float(source_fps):.3g} fps"
            + (f" slowed {slowmo}x" if slowmo > 1 else "")
            + ": frames would be dropped",
            param="frame_rate",
        )
    return FrameRateRequest(fps=rate, slowmo=slowmo)


def exact_rate(fps: float | Fraction) -> Fraction:
    """``fps`` as an exact fraction: an NTSC rate (59.94) as n * 1000/1001, else to 1/1000."""
    if isinstance(fps, Fraction):
        return fps
    ntsc = round(fps / _NTSC)
    if ntsc and abs(ntsc * _NTSC / Fraction(fps) - 1) < _NTSC_TOLERANCE:
        return ntsc * _NTSC
    return Fraction(fps).limit_denominator(1000)


def output_duration(duration_s: float, request: FrameRateRequest) -> float:
    """How long the output of a ``duration_s`` source runs (slow motion stretches it); the
    frames it holds are this times ``output_rate``, rounded up."""
    return duration_s * request.slowmo


def output_rate(request: FrameRateRequest, source_fps: Fraction | None) -> Fraction:
    """The output's frames per second: the request's, else the source's.

    Raises InvalidRequest when neither is known (a stream that declares no rate).
    """
    if request.fps is not None:
        return request.fps
    if not source_fps:
        raise InvalidRequest(
            "The source declares no frame rate: give the output's rate.", param="frame_rate"
        )
    return source_fps
