"""The frame rate and slow motion a task chooses (``model_params.frame_rate``, ``.slowmo``).

The limits are ``frame_rate_request``'s (upres.domain.framerate), checked
twice: the fixed ones before anything is fetched, the source's rate once the
probe knows it. A refusal is 400 invalid_parameter naming the parameter and the
valid range. A submission that sends neither keeps the source's timing, as
before tasks could choose.
"""

from __future__ import annotations

from fractions import Fraction

from upres.domain.framerate import MAX_FRAME_RATE, FrameRateRequest, frame_rate_request
from upres.errors import InvalidRequest

PARAMS = "model_params"


def check_frame_rate(
    *, frame_rate: float | None, slowmo: int | None, source_fps: Fraction | None = None
) -> FrameRateRequest:
    """The request ``frame_rate`` and ``slowmo`` make (None: not sent), checked against
    ``source_fps`` when known.

    Raises InvalidRequest (param ``model_params.frame_rate`` or ``.slowmo``) naming
    the valid values, and changes nothing.
    """
    chosen = 1 if slowmo is None else slowmo
    try:
        return frame_rate_request(fps=frame_rate, slowmo=chosen, source_fps=source_fps)
    except InvalidRequest as exc:
        message = exc.message
        if exc.param == "frame_rate":
            message = f"{message}; valid: {_valid_rates(source_fps, chosen)}"
        raise InvalidRequest(message, param=f"{PARAMS}.{exc.param}") from exc


def _valid_rates(source_fps: Fraction | None, slowmo: int) -> str:
    """The range of rates a source takes, as a client reads it."""
    top = f"{float(MAX_FRAME_RATE):g} fps"
    if not source_fps:
        return f"above 0 and at most {top}"
    lowest = source_fps / slowmo
    if lowest > MAX_FRAME_RATE:
        return f"none for a {float(source_fps):.4g} fps source slowed {slowmo}x"
    return f"from {float(lowest):.4g} to {top}"
