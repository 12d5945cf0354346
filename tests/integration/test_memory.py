"""The engine streams: a 3x longer video must not raise peak memory (RSS) by more than 10%.

Each run happens in a fresh child process that reports its own peak RSS
(``VmHWM``, which starts afresh at exec; ``ru_maxrss`` would inherit the
parent's peak across fork), so the test process's memory does not blur the
comparison. The frames are large enough (320x240 in, 640x480 out)
that holding the longer clip's frames would add well over 100 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clips import make_clip

CHILD = """
import json, sys
from pathlib import Path
from upres.domain.media import EncodeSettings, MediaLimits
from upres.pipeline.engine import upscale_video
from upres.pipeline.video_run import VideoOptions

kept = []


class Nearest:
    factor = 2
    batch_size = 4

    def upscale(self, pixels):
        out = pixels.repeat_interleave(2, 1).repeat_interleave(2, 2)
        if sys.argv[3] == "leak":
            kept.append(out)
        return out


result = upscale_video(
    source=Path(sys.argv[1]),
    destination=Path(sys.argv[2]),
    upscaler=Nearest(),
    options=VideoOptions(encode=EncodeSettings(preset="ultrafast"), limits=MediaLimits()),
)
status = Path("/proc/self/status").read_text()
peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
print(json.dumps({"frames": result.frames, "peak_kib": peak_kib}))
"""


def _peak_rss(source: Path, destination: Path, *, leak: bool = False) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(destination), "leak" if leak else "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return int(report["frames"]), int(report["peak_kib"])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_three_times_longer_video_uses_no_more_memory(tmp_path: Path) -> None:
    short = make_clip(tmp_path / "short.mp4", width=320, height=240, frames=60, fps=20)
    long = make_clip(tmp_path / "long.mp4", width=320, height=240, frames=180, fps=20)
    short_frames, short_peak = _peak_rss(short, tmp_path / "short-out.mp4")
    long_frames, long_peak = _peak_rss(long, tmp_path / "long-out.mp4")
    assert (short_frames, long_frames) == (60, 180)
    assert long_peak <= short_peak * 1.10, (short_peak, long_peak)
    # The measurement can see retention: an upscaler that keeps its 180 outputs
    # (180 * 640*480*3 B = 166 MB) pushes the peak well past the 10% margin.
    _, leaky_peak = _peak_rss(long, tmp_path / "leak-out.mp4", leak=True)
    assert leaky_peak > short_peak * 1.10, (short_peak, leaky_peak)
