"""The CPU runtimes compared on the same frame, in one process, alternating.

Contestants, for one model on one frame (upscaled at the model's native scale; a 3x
model at 2x, its output area-downscaled, as upres serves it):

- ``pytorch``: upres's model stage on PyTorch (``ModelUpscaler``, fp32);
- ``ncnn``: upres's model stage on ncnn (``NcnnUpscaler``);
- ``plain-ncnn``: the ncnn runtime by itself on the same weights and frame, as
  a program around ncnn calls it (``Mat.from_pixels``, normalise, extract,
  back to 8-bit RGB): the peer upres must keep up with.

Each round runs every contestant once, in an order rotated from round to
round, so a change in the machine's load falls on all of them alike; the
median of the rounds is reported. upres runs each model on the registry's CPU
runtime (``registry.CPU_RUNTIMES``), so its time is that contestant's.

    .venv/bin/python -m bench._runtimes --model realesr-animevideov3 --size 640x360 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources

import ncnn
import numpy as np
import torch
from skimage import data
from torch.nn import functional

from upres.models import realcugan
from upres.models.registry import cpu_runtime, get_model, largest_factor
from upres.models.specs import Architecture, ModelSpec, Runtime
from upres.pipeline.ncnn_upscale import NcnnUpscaler
from upres.pipeline.upscale import ModelUpscaler

CONTESTANTS = ("pytorch", "ncnn", "plain-ncnn")
UPRES_CONTESTANT = {Runtime.PYTORCH: "pytorch", Runtime.NCNN: "ncnn"}
RESULT_PREFIX = "RUNTIMES-RESULT "


@dataclass(frozen=True, kw_only=True)
class RuntimeResult:
    """Seconds (wall and CPU, all threads) per frame of each contestant, one per round."""

    model: str
    width: int
    height: int
    threads: int
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.wall[name])

    def median_cpu(self, name: str) -> float:
        return statistics.median(self.cpu[name])

    @property
    def upres(self) -> str:
        """The contestant upres runs this model as on the CPU."""
        return UPRES_CONTESTANT[cpu_runtime(get_model(self.model))]

    @property
    def faster(self) -> str:
        """The faster of upres's two runtimes in this run."""
        return min(("pytorch", "ncnn"), key=self.median)

    def upres_over_plain(self) -> float:
        return self.median(self.upres) / self.median("plain-ncnn")

    def upres_over_plain_cpu(self) -> float:
        """The same in CPU seconds, which other people's load changes less than wall time."""
        return self.median_cpu(self.upres) / self.median_cpu("plain-ncnn")


class PlainNcnn:
    """The ncnn runtime on its own: 8-bit RGB in, 8-bit RGB out, nothing of upres.

    For Real-CUGAN it does what realcugan-ncnn-vulkan does around the network on
    the CPU: the 8-bit frame reflect-padded, the output cropped and, at 4x, the
    frame added nearest-upscaled.
    """

    def __init__(self, spec: ModelSpec, threads: int) -> None:
        cugan = spec.architecture is Architecture.REALCUGAN
        self._form = realcugan.ncnn_form(spec.scale) if cugan else None
        self._blobs = (realcugan.INPUT_BLOB, realcugan.OUTPUT_BLOB) if cugan else ("data", "output")
        self._net = ncnn.Net()
        self._net.opt.num_threads = threads
        folder = resources.files(spec.package) / "models"
        with resources.as_file(folder / f"{spec.stem}.param") as param:
            assert self._net.load_param(str(param)) == 0
        with resources.as_file(folder / f"{spec.stem}.bin") as weights:
            assert self._net.load_model(str(weights)) == 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        padded = frame
        if self._form is not None:
            border, step = self._form.prepadding, self._form.multiple_of
            bottom, right = (border + -length % step for length in frame.shape[:2])
            padded = np.pad(frame, ((border, bottom), (border, right), (0, 0)), mode="reflect")
        height, width = padded.shape[:2]
        mat = ncnn.Mat.from_pixels(padded, ncnn.Mat.PixelType.PIXEL_RGB, width, height)
        mat.substract_mean_normalize([], [1 / 255.0] * 3)
        extractor = self._net.create_extractor()
        assert extractor.input(self._blobs[0], mat) == 0
        status, out = extractor.extract(self._blobs[1])
        assert status == 0
        planes = np.asarray(out)
        if self._form is not None:
            planes = self._form.after(planes, frame.transpose(2, 0, 1) / 255.0)
        planes = np.clip(planes, 0.0, 1.0) * 255.0
        return np.ascontiguousarray(planes.round().astype(np.uint8).transpose(1, 2, 0))


def photo_frame(width: int, height: int) -> np.ndarray:
    """A photograph (scikit-image's astronaut) resized to ``width`` x ``height``, 8-bit RGB."""
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float()
    small = functional.interpolate(photo, size=(height, width), mode="area")
    return small[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy().copy()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(model: str, width: int, height: int, *, rounds: int, threads: int) -> RuntimeResult:
    """Time every contestant on the same frame, ``rounds`` times, alternating."""
    torch.set_num_threads(threads)
    spec = get_model(model)
    frame = photo_frame(width, height)
    pixels = torch.from_numpy(frame)[None]
    pytorch = ModelUpscaler(spec, largest_factor(spec), device="cpu")
    in_ncnn = NcnnUpscaler(spec, largest_factor(spec), threads=threads)
    plain = PlainNcnn(spec, threads)
    runs: dict[str, Callable[[], object]] = {
        "pytorch": lambda: pytorch.upscale(pixels),
        "ncnn": lambda: in_ncnn.upscale(pixels),
        "plain-ncnn": lambda: plain(frame),
    }
    for run in runs.values():
        run()
    result = RuntimeResult(model=model, width=width, height=height, threads=threads)
    for round_index in range(rounds):
        shift = round_index % len(CONTESTANTS)
        for name in CONTESTANTS[shift:] + CONTESTANTS[:shift]:
            wall, cpu = time.perf_counter(), _cpu_seconds()
            runs[name]()
            result.wall.setdefault(name, []).append(time.perf_counter() - wall)
            result.cpu.setdefault(name, []).append(_cpu_seconds() - cpu)
    return result


_HEADER = (
    "| model | frame | rounds | PyTorch s/frame | ncnn in upres s/frame | plain ncnn s/frame "
    "| CPU s/frame: PyTorch / ncnn / plain | faster in upres | upres runs "
    "| upres / plain ncnn: wall / CPU |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def table(results: list[RuntimeResult]) -> str:
    """One line per model: median wall and CPU seconds of each contestant, and the ratio."""
    lines = [_HEADER]
    for r in results:
        cpu = " / ".join(f"{r.median_cpu(name):.2f}" for name in CONTESTANTS)
        lines.append(
            f"| {r.model} | {r.width}x{r.height} | {len(r.wall['plain-ncnn'])} "
            f"| {r.median('pytorch'):.2f} | {r.median('ncnn'):.2f} | {r.median('plain-ncnn'):.2f} "
            f"| {cpu} | {r.faster} | {r.upres} "
            f"| **{r.upres_over_plain():.2f}x / {r.upres_over_plain_cpu():.2f}x** |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--size", required=True, help="WxH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    result = measure(args.model, width, height, rounds=args.rounds, threads=args.threads)
    print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
