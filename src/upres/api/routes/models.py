"""GET /v1/models: the one API model, its factors, prices and limits."""

from __future__ import annotations

from fastapi import APIRouter

from upres.api.deps import AuthenticatedKey, SettingsDep
from upres.api.openapi import error_responses
from upres.api.schemas import (
    InterpolationCard,
    ModelCard,
    ModelLimits,
    ModelList,
    ModelPricing,
    NetworkCard,
)
from upres.config import Settings
from upres.domain.tasks import API_MODEL, Factor
from upres.models.registry import (
    INTERPOLATORS,
    MODELS,
    cpu_runtime,
    denoise_levels,
    model_for,
    runtimes,
    supported_factors,
)
from upres.models.specs import ModelSpec

router = APIRouter(tags=["Models"])


def model_card(settings: Settings) -> ModelCard:
    """What clients need to know before submitting: factors, credits per second, limits."""
    pricing = settings.pricing
    return ModelCard(
        id=API_MODEL,
        owned_by="upres",
        factors=[str(int(factor)) for factor in Factor],
        default_factor=str(int(Factor.X2)),
        pricing=ModelPricing(
            credits_per_second={str(int(f)): pricing.rate(f, None) for f in Factor},
            interpolation_credits_per_second=pricing.interpolation_per_second,
        ),
        limits=ModelLimits(
            max_videos_per_request=1,
            max_width=settings.max_width,
            max_height=settings.max_height,
            max_duration_s=settings.max_duration_s,
            max_input_bytes=settings.max_input_bytes,
            formats=["mp4"],
            result_ttl_s=settings.result_ttl_s,
        ),
        networks=[network_card(spec, settings) for spec in MODELS],
        interpolation_networks=[
            InterpolationCard(
                id=spec.id,
                description=spec.description,
                license=spec.license,
                credits_per_second=pricing.interpolation_per_second,
            )
            for spec in INTERPOLATORS
        ],
    )


def network_card(spec: ModelSpec, settings: Settings) -> NetworkCard:
    """What a client needs to choose ``spec`` for a task: its use, factors, levels, price."""
    pricing = settings.pricing
    factors = supported_factors(spec)
    defaults = [factor for factor in Factor if model_for(factor, settings.model).id == spec.id]
    return NetworkCard(
        id=spec.id,
        description=spec.description,
        factors=[str(int(factor)) for factor in factors],
        default_for=[str(int(factor)) for factor in defaults],
        denoise_levels=list(denoise_levels(spec)),
        price_multiplier=pricing.multiplier(spec.id),
        credits_per_second={str(int(f)): pricing.rate(f, spec.id) for f in factors},
        runtimes=[runtime.value for runtime in runtimes(spec)],
        cpu_runtime=cpu_runtime(spec).value,
    )


@router.get(
    "/v1/models",
    operation_id="listModels",
    summary="List the models this API offers",
    response_model=ModelList,
    responses=error_responses(401, 429),
)
def list_models(_key: AuthenticatedKey, settings: SettingsDep) -> ModelList:
    return ModelList(data=[model_card(settings)])
