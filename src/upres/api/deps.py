"""What routes depend on, as ``Annotated`` types: routes read as declarations.

``Services`` is everything the HTTP edge uses from the rest of upres; the app
either builds it from settings in its lifespan or is given a prebuilt one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from upres.api.admission import SubmissionGate
from upres.api.metrics import ApiMetrics, StoreStats
from upres.api.ratelimit import RateLimiter
from upres.api.schemas import TaskRenderer
from upres.config import Settings
from upres.domain.accounts import Account, ApiKey
from upres.domain.tasks import Task
from upres.errors import Unauthorized
from upres.services.tasks import Submission, Submitted
from upres.storage.base import StoredFile


class KeyAuthenticator(Protocol):
    def authenticate(self, secret: str) -> ApiKey:
        """Raises Unauthorized when the secret is unknown or revoked."""
        ...


class TaskUseCases(Protocol):
    def submit_idempotent(
        self, *, key: ApiKey, submission: Submission, idempotency_key: str | None
    ) -> Submitted: ...
    def get(self, *, key: ApiKey, task_id: str) -> Task: ...
    def cancel(self, *, key: ApiKey, task_id: str) -> Task: ...


class SignedFiles(Protocol):
    def open_signed(self, token: str) -> StoredFile:
        """Raises ResultExpired or NotFound when the token is stale or unknown."""
        ...


class StoreView(StoreStats, Protocol):
    """The few store reads the edge makes itself (health, metrics, credits)."""

    def ping(self) -> None:
        """Raises ServiceUnavailable when the database does not answer."""
        ...

    def get_account(self, account_id: str) -> Account: ...


@dataclass(frozen=True, kw_only=True)
class Services:
    """The rest of upres, as the HTTP edge sees it.

    ``files`` is None when results live elsewhere (S3): /v1/files then answers 404.
    ``worker_alive`` tells /healthz whether some worker is taking tasks.
    """

    keys: KeyAuthenticator
    tasks: TaskUseCases
    store: StoreView
    renderer: TaskRenderer
    files: SignedFiles | None
    worker_alive: Callable[[], bool]


_bearer = HTTPBearer(
    scheme_name="bearerAuth",
    description="All APIs require `Authorization: Bearer YOUR_API_KEY`",
    auto_error=False,
)


# The getters are ``async def`` although they never wait: FastAPI runs a plain
# ``def`` dependency on the shared thread pool, a thread hop per getter per request.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def get_submissions(request: Request) -> SubmissionGate:
    gate: SubmissionGate = request.app.state.submissions
    return gate


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
SubmissionsDep = Annotated[SubmissionGate, Depends(get_submissions)]


def authenticated_key(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The caller's key, after its rate limit.

    Raises Unauthorized without a valid ``Authorization: Bearer`` key and
    RateLimited when the key is over its limit.
    """
    if credentials is None:
        raise Unauthorized("Missing bearer token")
    key = services.keys.authenticate(credentials.credentials)
    limiter: RateLimiter = request.app.state.limiter
    request.state.rate_limit = limiter.hit(key.id)
    return key


async def get_task_service(services: ServicesDep) -> TaskUseCases:
    return services.tasks


AuthenticatedKey = Annotated[ApiKey, Depends(authenticated_key)]
TaskServiceDep = Annotated[TaskUseCases, Depends(get_task_service)]
