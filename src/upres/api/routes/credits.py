"""GET /v1/credits: check a key and its account's balance without starting a task."""

from __future__ import annotations

from fastapi import APIRouter

from upres.api.deps import AuthenticatedKey, ServicesDep
from upres.api.openapi import error_responses
from upres.api.schemas import CreditsPublic

router = APIRouter(tags=["Account"])


@router.get(
    "/v1/credits",
    operation_id="getCredits",
    summary="Remaining credits of the key's account",
    response_model=CreditsPublic,
    responses=error_responses(401, 429),
)
def get_credits(key: AuthenticatedKey, services: ServicesDep) -> CreditsPublic:
    account = services.store.get_account(key.account_id)
    return CreditsPublic(remaining_credits=account.balance, user_group=account.user_group)
