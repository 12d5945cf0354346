"""The look a task chooses: its network and, for networks that have them, a denoise level.

A submission that names neither gets the operator's default for its factor
(``UPRES_MODEL``, else the registry's), as before tasks chose; the task stores
what it got, so every chunk of it, on any worker, runs the same network.
Unlike the factor, which the spec silently corrects, a network or a level
that does not exist is refused, naming the valid values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from upres.domain.tasks import Factor
from upres.errors import ConfigError, InvalidRequest, UnknownModel, UnsupportedDenoise
from upres.models.registry import (
    MODELS,
    get_model,
    resolve_model,
    supported_factors,
    task_network,
)

NETWORK_PARAM = "model_params.network"
DENOISE_PARAM = "model_params.denoise"


@dataclass(frozen=True, kw_only=True)
class Look:
    """The network a task runs (a registry id) and its denoise level (None: none chosen)."""

    network: str
    denoise: int | None


def choose_look(
    *, network: str | None, denoise: int | None, factor: Factor, default_model: str | None
) -> Look:
    """The look of a submission at ``factor``: ``network`` when named, else the
    default (``default_model`` or the registry's for the factor), at ``denoise``.

    Raises InvalidRequest (param ``model_params.network`` or ``.denoise``) naming
    the valid values when the network is unknown or smaller than ``factor``, or
    the level is one it does not offer; changes nothing.
    """
    chosen = task_network(factor, network=network, default_model=default_model)
    try:
        spec = resolve_model(chosen, denoise)
    except UnsupportedDenoise as exc:  # first: it is an UnknownModel too
        raise InvalidRequest(exc.message, param=DENOISE_PARAM) from exc
    except UnknownModel as exc:
        known = ", ".join(spec.id for spec in MODELS)
        raise InvalidRequest(
            f"Invalid network: {chosen!r}; networks: {known}", param=NETWORK_PARAM
        ) from exc
    factors = supported_factors(spec)
    if factor not in factors:
        takes = " or ".join(f'"{int(each)}"' for each in factors)
        raise InvalidRequest(
            f"network {spec.id} upscales at most {spec.scale}x: choose upscale_factor {takes}, "
            "or another network",
            param=NETWORK_PARAM,
        )
    return Look(network=spec.id, denoise=denoise)


def check_network_settings(*, model: str | None, priced: Iterable[str]) -> None:
    """Raises ConfigError when ``UPRES_MODEL`` or a network ``UPRES_NETWORK_PRICES``
    prices is not registered: a typo would otherwise refuse every submission or
    price nothing."""
    named = [("UPRES_MODEL", model), *(("UPRES_NETWORK_PRICES", id_) for id_ in priced)]
    for setting, network in named:
        if network is None:
            continue
        try:
            get_model(network)
        except UnknownModel as exc:
            raise ConfigError(f"{setting}: {exc.message}") from exc
