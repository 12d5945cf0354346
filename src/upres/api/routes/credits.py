"""GET /v1/credits: check a key and its account's balance without starting a task."""

from __future__ import annotations

from fastapi import APIRouter, Response

from upres.api.deps import AuthenticatedKey, ServicesDep, store_read
from upres.api.openapi import error_responses
from upres.api.schemas import CreditsPublic
from upres.domain.accounts import Account

router = APIRouter(tags=["Account"])

CREDITS_PATH = "/v1/credits"


def credits_response(account: Account) -> Response:
    """The account's credits as JSON, for the route and the read path alike."""
    public = CreditsPublic(remaining_credits=account.balance, user_group=account.user_group)
    return Response(content=public.model_dump_json(), media_type="application/json")


@router.get(
    CREDITS_PATH,
    operation_id="getCredits",
    summary="Remaining credits of the key's account",
    response_model=CreditsPublic,
    responses=error_responses(401, 429),
)
async def get_credits(key: AuthenticatedKey, services: ServicesDep) -> Response:
    return credits_response(await store_read(services, services.store.get_account, key.account_id))
