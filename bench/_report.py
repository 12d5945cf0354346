"""Results of a throughput run: the machine, one row per (model, size, factor), and output.

The markdown table goes between ``<!-- throughput:<device> begin/end -->``
markers in docs/BENCHMARKS.md, so a CPU run and a GPU run each replace only
their own section and the hand-written text around them stays.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy
import torch
from bench._cases import CaseKind, Measurement
from bench._flops import Ceiling


@dataclass(frozen=True, kw_only=True)
class Machine:
    """What the numbers were measured on."""

    device: str
    device_name: str
    cpu: str
    cores: int
    torch_threads: int
    torch: str
    av: str
    numpy: str
    python: str
    load_average: str
    date: str


@dataclass(frozen=True, kw_only=True)
class Row:
    """All measurements of one model on one clip at one factor."""

    model: str
    factor: int
    width: int
    height: int
    results: dict[CaseKind, Measurement]
    longer: Measurement | None
    flop_per_in_px: float

    def fps(self, kind: CaseKind) -> float | None:
        found = self.results.get(kind)
        return found.frames / found.seconds if found and found.seconds > 0 else None

    def vs_baseline(self, kind: CaseKind) -> float | None:
        """Speed of ``kind`` over the speed of the naive baseline of the same run."""
        speed, base = self.fps(kind), self.fps("baseline")
        return speed / base if speed and base else None

    def overhead(self) -> float | None:
        """End-to-end time over model-only time, per frame (1.0: decode and encode fully hidden)."""
        e2e, model = self.fps("e2e"), self.fps("model")
        return model / e2e if e2e and model else None

    def output_mpx_per_s(self) -> float | None:
        e2e = self.fps("e2e")
        return e2e * self.width * self.height * self.factor**2 / 1e6 if e2e else None

    def model_tflops(self) -> float | None:
        """Arithmetic rate of the model stage (the model runs at its native scale)."""
        model = self.fps("model")
        return model * self.width * self.height * self.flop_per_in_px / 1e12 if model else None


@dataclass(frozen=True, kw_only=True)
class Document:
    """One run: where, with which non-default options, and its rows.

    ``section`` names the markers it is written between (the device type by default).
    """

    machine: Machine
    ceiling: Ceiling | None
    rows: tuple[Row, ...]
    options: str = ""
    section: str = ""


def machine(device: torch.device) -> Machine:
    on_gpu = device.type == "cuda"
    return Machine(
        device=device.type,
        device_name=torch.cuda.get_device_name(device) if on_gpu else "cpu",
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        av=av.__version__,
        numpy=numpy.__version__,
        python=platform.python_version(),
        load_average=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else platform.processor() or "unknown"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _fps_cell(row: Row, kind: CaseKind) -> str:
    fps, ratio = row.fps(kind), row.vs_baseline(kind)
    if fps is None:
        return "-"
    return f"{fps:.3g}" + (f" (x{ratio:.2f})" if ratio and kind != "baseline" else "")


def _memory_cell(row: Row) -> str:
    """Warm and peak RSS of the e2e case, then the peak on the longer clip."""
    e2e = row.results.get("e2e")
    if e2e is None:
        return "-"
    cell = f"{e2e.warm_rss_mb:.0f} / {e2e.peak_rss_mb:.0f}"
    if row.longer is None:
        return cell
    times = row.longer.frames / max(e2e.frames, 1)
    return f"{cell}; {times:.0f}x frames: {row.longer.peak_rss_mb:.0f}"


def _cpu_cell(row: Row) -> str:
    """CPU seconds per frame of the model, e2e and baseline cases (all threads)."""
    cells = []
    for kind in ("model", "e2e", "baseline"):
        found = row.results.get(kind)
        cells.append(_num(found.cpu_seconds / found.frames if found and found.frames else None))
    return " / ".join(cells)


def _gpu_cell(row: Row) -> str:
    e2e = row.results.get("e2e")
    return _num(e2e.peak_gpu_mb, 0) if e2e else "-"


def _ceiling_cell(row: Row, ceiling: Ceiling | None) -> str:
    tflops = row.model_tflops()
    if tflops is None:
        return "-"
    share = f" ({100 * tflops / ceiling.tflops:.0f}%)" if ceiling and ceiling.tflops else ""
    return f"{1000 * tflops:.1f}{share}"


_HEADER = (
    "| model | x | in -> out | frames | dtype/batch | e2e fps | model fps | decode fps "
    "| encode fps | baseline fps | e2e/model time | out MP/s | model GFLOP/s (% ceiling) "
    "| CPU s/frame: model / e2e / baseline | e2e RSS MB: warm / peak | peak GPU MB |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _line(row: Row, ceiling: Ceiling | None) -> str:
    any_result = next(iter(row.results.values()))
    model = row.results.get("model") or any_result
    cells = [
        row.model,
        str(row.factor),
        f"{row.width}x{row.height} -> {any_result.out_width}x{any_result.out_height}",
        str(any_result.frames),
        f"{model.dtype}/{model.batch}",
        *(_fps_cell(row, kind) for kind in ("e2e", "model", "decode", "encode", "baseline")),
        _num(row.overhead()),
        _num(row.output_mpx_per_s(), 3),
        _ceiling_cell(row, ceiling),
        _cpu_cell(row),
        _memory_cell(row),
        _gpu_cell(row),
    ]
    return "| " + " | ".join(cells) + " |"


def describe(m: Machine) -> str:
    """One sentence: when and on what a run was measured."""
    return (
        f"Measured {m.date} on {m.device_name} ({m.device}); CPU: {m.cpu}, {m.cores} cores, "
        f"torch {m.torch} ({m.torch_threads} threads), av {m.av}, numpy {m.numpy}, "
        f"Python {m.python}; load average at start: {m.load_average}."
    )


def table(document: Document) -> str:
    lines = [describe(document.machine)]
    if document.options:
        lines.append(f"Options: {document.options}.")
    if document.ceiling:
        c = document.ceiling
        lines.append(
            f"Conv ceiling (64->64 3x3, {c.dtype}, {c.shape}): {1000 * c.tflops:.1f} GFLOP/s."
        )
    lines += ["", _HEADER, *(_line(row, document.ceiling) for row in document.rows)]
    return "\n".join(lines)


def write(path: Path, document: Document) -> None:
    """Replace this device type's section of ``path`` (appended when it has none)."""
    write_section(path, document.section or document.machine.device, table(document))


def write_section(path: Path, name: str, body: str, *, prefix: str = "throughput") -> None:
    """Put ``body`` between the ``<prefix>:<name>`` markers of ``path`` (appended when absent)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(with_section(text, f"{prefix}:{name}", body))


def section(text: str, marker: str) -> str | None:
    """The body of the ``marker`` section of ``text`` (None when it has none)."""
    found = _section_pattern(marker).search(text)
    return found.group(1) if found else None


def with_section(text: str, marker: str, body: str) -> str:
    """``text`` with ``body`` between the ``marker`` begin/end comments (appended when absent)."""
    begin, end = f"<!-- {marker} begin -->", f"<!-- {marker} end -->"
    block = f"{begin}\n{body}\n{end}"
    pattern = _section_pattern(marker)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def _section_pattern(marker: str) -> re.Pattern[str]:
    begin, end = f"<!-- {marker} begin -->", f"<!-- {marker} end -->"
    return re.compile(re.escape(begin) + r"\n?(.*?)\n?" + re.escape(end), re.DOTALL)


def as_json(document: Document) -> dict[str, object]:
    return {
        "machine": asdict(document.machine),
        "ceiling": asdict(document.ceiling) if document.ceiling else None,
        "options": document.options,
        "rows": [
            {
                **asdict(row),
                "fps": {kind: row.fps(kind) for kind in row.results},
                "vs_baseline": {kind: row.vs_baseline(kind) for kind in row.results},
                "e2e_over_model_time": row.overhead(),
                "output_mpx_per_s": row.output_mpx_per_s(),
                "model_tflops": row.model_tflops(),
            }
            for row in document.rows
        ],
    }
