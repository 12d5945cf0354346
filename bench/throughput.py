"""Throughput bench: how fast upres upscales video on this machine, against a naive loop.

    .venv/bin/python bench/throughput.py                      # defaults for the device at hand
    .venv/bin/python bench/throughput.py --models realesrgan-x4plus --sizes 720p \\
        --factors 4 --frames 48 --json
    .venv/bin/python bench/throughput.py --ceiling            # only the conv ceiling

For each model, clip size and factor it measures, each in a fresh process:
decode alone, encode alone, the model alone on decoded frames, the real
``upscale_video`` pipeline end to end, and the naive baseline (fp32, one
frame at a time, decode -> infer -> encode in sequence). Every speed is also
given as a ratio to that baseline. Results go to docs/BENCHMARKS.md (between
markers per device type) and, with ``--json``, to stdout as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# Run as a script, the folder on sys.path is bench/; the harness imports itself as `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from bench import _report, _rife_speed
from bench._cases import KINDS, Case, CaseKind, Measurement, as_dict, run
from bench._clips import ClipSpec, make_clip, parse_size
from bench._flops import Ceiling, conv_ceiling, formula_macs
from bench._runtimes import RESULT_PREFIX as RUNTIMES_PREFIX
from bench._runtimes import RuntimeResult
from bench._runtimes import table as runtime_table

from upres.models.registry import MODELS, get_model, runtimes
from upres.models.specs import Runtime

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOC = ROOT / "docs" / "BENCHMARKS.md"
_RESULT_PREFIX = "BENCH-RESULT "
_INTERPOLATION = "interpolation"
_INTERPOLATION_SIZES = ("360p", "1080p")


@dataclass(frozen=True, kw_only=True)
class Plan:
    """One model on one clip size at some factors, with ``frames`` frames per clip."""

    model: str
    size: tuple[int, int]
    factors: tuple[int, ...]
    frames: int


# A 2-core CPU needs about a minute per 360p frame with the 23-block RRDBNet
# (8.3 TFLOP), so the CPU defaults run it on a 180p clip and the compact model
# (29x less arithmetic) at 360p: about 7 minutes on 2 idle cores.
CPU_PLANS = (
    Plan(model="realesr-animevideov3", size=(640, 360), factors=(4, 2), frames=6),
    Plan(model="realesrgan-x4plus", size=(320, 180), factors=(4,), frames=2),
)
# The frame each model's CPU runtimes are compared on (the CPU plans' sizes;
# 320x180 for the rest); ``--sizes`` gives its first size to every model instead.
RUNTIME_SIZES = {"realesr-animevideov3": (640, 360)}
# Each model at the factors it serves natively or by downscale: Real-CUGAN 4x at 4x
# and 2x, its 2x network (the one with every denoise level) at 2x.
_GPU_FACTORS = {
    "realesrgan-x4plus": (4, 2),
    "realesr-animevideov3": (4, 2),
    "realcugan-se-x4": (4, 2),
    "realcugan-se-x2": (2,),
    "basicvsr-vimeo90k-bi": (4, 2),
}
GPU_PLANS = tuple(
    Plan(model=model, size=parse_size(size), factors=factors, frames=32)
    for model, factors in _GPU_FACTORS.items()
    for size in ("360p", "720p", "1080p")
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="comma-separated model ids (default: per device)")
    parser.add_argument("--sizes", help="comma-separated 180p/360p/720p/1080p or WxH")
    parser.add_argument("--factors", help="comma-separated factors: 1, 2, 4")
    parser.add_argument("--frames", type=int, help="frames per clip")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--half", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--batch", type=int, help="frames per model call (default: engine's)")
    parser.add_argument("--torch-threads", type=int, help="torch intra-op threads per case")
    parser.add_argument("--encoder-threads", type=int, default=0, help="0: encoder decides")
    parser.add_argument("--encoder-preset", help="x264/x265 preset; default the engine's (medium)")
    parser.add_argument("--channels-last", action="store_true", help="networks in NHWC")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="autotune cuDNN convs")
    parser.add_argument(
        "--length-check",
        type=int,
        default=3,
        help="N: also run e2e at N x "
        "length for the first case, to show memory stays flat (0: skip)",
    )
    parser.add_argument(
        "--kinds",
        default=",".join((*KINDS, "runtimes", _INTERPOLATION)),
        help="which measurements to run; runtimes: PyTorch vs ncnn on the CPU, every model; "
        "interpolation: RIFE per synthesised frame (--sizes, default 360p and 1080p)",
    )
    parser.add_argument(
        "--runtime-rounds", type=int, default=3, help="alternating rounds of the runtimes check"
    )
    parser.add_argument("--ceiling", action="store_true", help="only measure the conv ceiling")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the conv ceiling")
    parser.add_argument("--ceiling-seconds", type=float, default=2.0, help="conv timing length")
    parser.add_argument("--clips", type=Path, help="clip cache folder (default: a temp dir)")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="do not write the markdown file")
    parser.add_argument("--section", help="marker name in the doc (default: the device type)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs of the cases, here")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.case:
        measurement = run(Case(**json.loads(args.case)))
        print(_RESULT_PREFIX + json.dumps(as_dict(measurement)), flush=True)
        return 0
    device = _device(args.device)
    if device.type == "cpu" and "runtimes" in args.kinds.split(","):
        _compare_runtimes(args)
    if _INTERPOLATION in args.kinds.split(","):
        _interpolation(args, device)
    if not set(args.kinds.split(",")) & set(KINDS):
        return 0
    ceiling = None if args.no_ceiling else _ceiling(device, args)
    if args.ceiling:
        return 0
    machine = _report.machine(device)
    with tempfile.TemporaryDirectory(prefix="upres-bench-clips-") as scratch:
        rows = _run_plans(args, device, args.clips or Path(scratch))
    document = _report.Document(
        machine=machine,
        ceiling=ceiling,
        rows=tuple(rows),
        options=_options(argv),
        section=args.section or device.type,
    )
    print(json.dumps(_report.as_json(document), indent=2) if args.json else _report.table(document))
    if not args.no_doc:
        _report.write(args.doc, document)
        print(f"wrote {args.doc}", file=sys.stderr)
    return 0


def _interpolation(args: argparse.Namespace, device: torch.device) -> None:
    """RIFE's seconds per synthesised frame, to ``interpolation:<device>`` of the doc."""
    sizes = args.sizes.split(",") if args.sizes else list(_INTERPOLATION_SIZES)
    rounds = 1 if device.type == "cpu" else 10
    body = _rife_speed.section(
        _rife_speed.measure(device, sizes, rounds), device, torch.get_num_threads()
    )
    print(body, file=sys.stderr if args.json else sys.stdout)
    if not args.no_doc:
        _report.write_section(args.doc, device.type, body, prefix=_INTERPOLATION)


def _compare_runtimes(args: argparse.Namespace) -> None:
    """PyTorch, ncnn in upres and plain ncnn on the CPU, every model with an ncnn form,
    each model in a fresh process, its contestants alternating (bench/_runtimes.py)."""
    models = args.models.split(",") if args.models else [spec.id for spec in MODELS]
    results = [
        _runtimes_of(model, args) for model in models if Runtime.NCNN in runtimes(get_model(model))
    ]
    body = "\n".join(
        [_report.describe(_report.machine(torch.device("cpu"))), "", runtime_table(results)]
    )
    print(body, file=sys.stderr if args.json else sys.stdout)
    if not args.no_doc:
        _report.write_section(args.doc, "cpu-runtimes", body)


def _runtimes_of(model: str, args: argparse.Namespace) -> RuntimeResult:
    """Raises RuntimeError with the child's output when it fails."""
    given = parse_size(args.sizes.split(",")[0]) if args.sizes else None
    width, height = given or RUNTIME_SIZES.get(model, (320, 180))
    print(f"  runtimes: {model} {width}x{height}", file=sys.stderr)
    command = [sys.executable, "-m", "bench._runtimes", "--model", model]
    command += ["--size", f"{width}x{height}", "--rounds", str(args.runtime_rounds)]
    if args.torch_threads:
        command += ["--threads", str(args.torch_threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RUNTIMES_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"runtimes of {model} failed:\n{done.stdout}\n{done.stderr}")
    return RuntimeResult(**json.loads(lines[-1].removeprefix(RUNTIMES_PREFIX)))


def _options(argv: list[str] | None) -> str:
    """The command-line options that change what is measured, as given."""
    given = sys.argv[1:] if argv is None else argv
    skipped = {"--doc", "--clips", "--section", "--profile"}
    kept = [
        a for i, a in enumerate(given) if a not in skipped and not (i and given[i - 1] in skipped)
    ]
    return " ".join(a for a in kept if a not in ("--json", "--no-doc"))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _ceiling(device: torch.device, args: argparse.Namespace) -> Ceiling:
    """The conv ceiling in the dtype the engine runs in: fp16 on CUDA, fp32 on the CPU."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    ceiling = conv_ceiling(device, dtype, seconds=args.ceiling_seconds)
    line = f"conv ceiling: {ceiling.tflops:.4f} TFLOP/s {ceiling.dtype} {ceiling.shape}"
    print(line, file=sys.stdout if args.ceiling else sys.stderr)
    return ceiling


def _plans(args: argparse.Namespace, device: torch.device) -> tuple[Plan, ...]:
    defaults = GPU_PLANS if device.type == "cuda" else CPU_PLANS
    if not (args.models or args.sizes or args.factors or args.frames):
        return defaults
    models = args.models.split(",") if args.models else sorted({p.model for p in defaults})
    sizes = [parse_size(s) for s in args.sizes.split(",")] if args.sizes else [defaults[0].size]
    factors = tuple(int(f) for f in args.factors.split(",")) if args.factors else (4,)
    frames = args.frames or defaults[0].frames
    return tuple(
        Plan(model=m, size=s, factors=factors, frames=frames) for m in models for s in sizes
    )


def _run_plans(args: argparse.Namespace, device: torch.device, clips: Path) -> list[_report.Row]:
    kinds: list[CaseKind] = [k for k in KINDS if k in args.kinds.split(",")]
    rows: list[_report.Row] = []
    for plan in _plans(args, device):
        get_model(plan.model)
        width, height = plan.size
        clip = make_clip(ClipSpec(width=width, height=height, frames=plan.frames), clips)
        for factor in plan.factors:
            case = Case(
                kind="e2e",
                clip=str(clip),
                model=plan.model,
                factor=factor,
                device=device.type,
                half=None if args.half == "auto" else args.half == "on",
                batch=args.batch,
                torch_threads=args.torch_threads,
                encoder_threads=args.encoder_threads,
                encoder_preset=args.encoder_preset,
                channels_last=args.channels_last,
                compile=args.compile,
                cudnn_benchmark=args.cudnn_benchmark,
            )
            results = {kind: _measure(replace(case, kind=kind), args.profile) for kind in kinds}
            longer = _longer(args, plan, case, clips) if not rows else None
            rows.append(_row(plan, factor, results, longer))
    return rows


def _longer(args: argparse.Namespace, plan: Plan, case: Case, clips: Path) -> Measurement | None:
    """The e2e case on a clip ``--length-check`` times longer (memory should not grow)."""
    if args.length_check < 2 or "e2e" not in args.kinds:
        return None
    width, height = plan.size
    spec = ClipSpec(width=width, height=height, frames=plan.frames * args.length_check)
    return _measure(replace(case, clip=str(make_clip(spec, clips))), args.profile)


def _measure(case: Case, profile: Path | None) -> Measurement:
    """Run ``case`` in a fresh interpreter (under py-spy when ``profile`` names a folder).

    Raises RuntimeError with the case's output when it fails.
    """
    name = f"{case.model}-x{case.factor}-{Path(case.clip).stem}-{case.kind}"
    print(f"  {name}", file=sys.stderr)
    command = [sys.executable, "-m", "bench.throughput", "--case", json.dumps(asdict(case))]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        spy = str(Path(sys.executable).with_name("py-spy"))
        record = [spy, "record", "--threads", "--native", "--rate", "50"]
        command = [*record, "-o", str(profile / f"{name}.svg"), "--", *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(_RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"case {case} failed:\n{done.stdout}\n{done.stderr}")
    return Measurement(**json.loads(lines[-1].removeprefix(_RESULT_PREFIX)))


def _row(
    plan: Plan, factor: int, results: dict[CaseKind, Measurement], longer: Measurement | None
) -> _report.Row:
    spec = get_model(plan.model)
    return _report.Row(
        model=plan.model,
        factor=factor,
        width=plan.size[0],
        height=plan.size[1],
        results=results,
        longer=longer,
        flop_per_in_px=2 * formula_macs(spec),
    )


if __name__ == "__main__":
    raise SystemExit(main())
