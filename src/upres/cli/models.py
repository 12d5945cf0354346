"""``upres models``: what models this installation can run."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from upres.models.registry import (
    INTERPOLATORS,
    MODELS,
    cpu_runtime,
    default_factors,
    denoise_levels,
    runtimes,
)
from upres.models.specs import InterpolatorSpec, ModelSpec


def models_table(models: tuple[ModelSpec, ...] = MODELS) -> Table:
    """One row per model: id, scales, denoise levels, size needs, license, speed, runtimes,
    default-for factors."""
    table = Table(title="upres models")
    columns = (
        "id",
        "scales",
        "denoise",
        "size",
        "license",
        "speed",
        "runtimes",
        "default for",
        "description",
    )
    for column in columns:
        # Ids and the facts about them stay on one line; the description wraps.
        table.add_column(column, no_wrap=column in ("id", "scales", "denoise"))
    for spec in models:
        defaults = ", ".join(f"{int(factor)}x" for factor in default_factors(spec)) or "-"
        table.add_row(
            spec.id,
            _scales(spec),
            ", ".join(map(str, denoise_levels(spec))),
            f"min {spec.min_size}px, multiple of {spec.multiple_of}",
            spec.license,
            spec.speed.value,
            _runtimes(spec),
            defaults,
            spec.description,
        )
    return table


def interpolators_table(networks: tuple[InterpolatorSpec, ...] = INTERPOLATORS) -> Table:
    """One row per frame-interpolation network (``upres upscale --fps``/``--slowmo``)."""
    table = Table(title="upres interpolation networks (--fps, --slowmo)")
    for column in ("id", "architecture", "license", "speed", "GFLOP/Mpx", "description"):
        table.add_column(column)
    for spec in networks:
        table.add_row(
            spec.id,
            spec.architecture,
            spec.license,
            spec.speed.value,
            f"{spec.gflop_per_mpixel:g}",
            spec.description,
        )
    return table


def _scales(spec: ModelSpec) -> str:
    """Native scale, and the smaller factors reached by downscaling its output."""
    smaller = [f"{factor}x" for factor in (1, 2, 4) if factor < spec.scale]
    return f"{spec.scale}x native" + (f" ({', '.join(smaller)} by downscale)" if smaller else "")


def _runtimes(spec: ModelSpec) -> str:
    """The runtimes that can run the model, and the one it runs on on the CPU."""
    names = ", ".join(runtime.value for runtime in runtimes(spec))
    return f"{names} (CPU: {cpu_runtime(spec).value})"


_LIST_HELP = (
    "Print a table of the models: their scales, the input sizes they take, license, speed, "
    "the runtimes that run them and the factors each is the default for.\n\n"
    "An id from the table is what upres upscale --model and UPRES_MODEL take."
)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to ``app``."""
    group = typer.Typer(
        no_args_is_help=True, help="The AI models (networks) this installation can run."
    )

    @group.command("list", help=_LIST_HELP)
    def list_models() -> None:
        """Print the registered models as a table."""
        # Piped or logged, rich would wrap the table at 80 columns: give it room.
        console = Console() if sys.stdout.isatty() else Console(width=200)
        console.print(models_table())
        console.print(interpolators_table())

    app.add_typer(group, name="models")
