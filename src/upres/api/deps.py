"""What routes depend on, as ``Annotated`` types: routes read as declarations.

``Services`` is everything the HTTP edge uses from the rest of upres; the app
either builds it from settings in its lifespan or is given a prebuilt one.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, ParamSpec, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from upres.api.admission import SubmissionGate
from upres.api.keycache import KeyCache
from upres.api.metrics import ApiMetrics, StoreStats
from upres.api.ratelimit import RateLimiter
from upres.api.schemas import ResultUrl, TaskRenderer
from upres.config import Settings
from upres.domain.accounts import ApiKey
from upres.domain.tasks import Task
from upres.errors import NotFound, Unauthorized
from upres.services.credits import AccountLookup
from upres.services.tasks import Estimate, Submission, Submitted
from upres.services.uploads import UploadService
from upres.storage.base import StoredFile

T = TypeVar("T")
P = ParamSpec("P")


class KeyAuthenticator(Protocol):
    def authenticate(self, secret: str) -> ApiKey:
        """Raises Unauthorized when the secret is unknown or revoked."""
        ...


class TaskUseCases(Protocol):
    def submit_idempotent(
        self, *, key: ApiKey, submission: Submission, idempotency_key: str | None
    ) -> Submitted: ...
    def estimate(self, *, key: ApiKey, submission: Submission) -> Estimate: ...
    def list(self, *, key: ApiKey, limit: int) -> list[Task]: ...
    def get(self, *, key: ApiKey, task_id: str) -> Task: ...
    def cancel(self, *, key: ApiKey, task_id: str) -> Task: ...


class SignedFiles(Protocol):
    def open_signed(self, token: str) -> StoredFile:
        """Raises ResultExpired or NotFound when the token is stale or unknown."""
        ...


class StoreView(AccountLookup, StoreStats, Protocol):
    """The few store reads the edge makes itself (health, metrics, credits)."""

    def ping(self) -> None:
        """Raises ServiceUnavailable when the database does not answer."""
        ...


@dataclass(frozen=True, kw_only=True)
class Services:
    """The rest of upres, as the HTTP edge sees it.

    ``files`` is None when results live elsewhere (S3): /v1/files then answers 404.
    ``worker_alive`` tells /healthz whether some worker is taking tasks.
    ``uploads`` is None when this API takes no uploads: /v1/uploads then answers 404.
    ``file_links`` signs links to stored files (running tasks' previews); None: no previews.
    ``inline_reads``: the store's single-row reads are local and take microseconds
    (SQLite): the read path makes them on the event loop, as a thread hop costs more
    than the read. False (PostgreSQL, a network round trip): they go to a thread.
    """

    keys: KeyAuthenticator
    tasks: TaskUseCases
    store: StoreView
    renderer: TaskRenderer
    files: SignedFiles | None
    worker_alive: Callable[[], bool]
    uploads: UploadService | None = None
    file_links: ResultUrl | None = None
    inline_reads: bool = False


async def store_read(
    services: Services, read: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``read(*args, **kwargs)``: a single-row store read, on the event loop when
    the services allow it (``Services.inline_reads``), else on a thread."""
    if services.inline_reads:
        return read(*args, **kwargs)
    return await run_in_threadpool(read, *args, **kwargs)


AUTH_FAILURES_MESSAGE = "Too many failed authentications from this address, please try again later"

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


def failures_address(scope: Scope) -> str:
    """The client address that failed authentications count against (as the
    server saw it: behind a trusted proxy, the forwarded one)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@asynccontextmanager
async def counted_failures(request: Request) -> AsyncIterator[None]:
    """An authentication attempt of the client's address: refused at once when the
    address has spent its failed-authentication budget, counted when it fails.

    Raises RateLimited past the budget; lets the Unauthorized of a failure through.
    """
    failures: RateLimiter = request.app.state.auth_limiter
    address = failures_address(request.scope)
    spent = await failures.exhausted(address)
    if spent is not None:
        raise failures.refusal(spent, AUTH_FAILURES_MESSAGE)
    try:
        yield
    except Unauthorized:
        await failures.hit(address)
        raise


async def authenticated_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The caller's key, after its rate limit.

    Raises Unauthorized without a valid ``Authorization: Bearer`` key, and
    RateLimited when the key is over its limit or the client's address has
    failed to authenticate too often (then before looking at the key at all).
    """
    if credentials is None:  # not a guess: nothing to count
        raise Unauthorized("Missing bearer token")
    async with counted_failures(request):
        key = await _key_of(request, credentials.credentials)
    limiter: RateLimiter = request.app.state.limiter
    request.state.rate_limit = await limiter.hit(key.id)
    return key


async def _key_of(request: Request, secret: str) -> ApiKey:
    """The key of the bearer secret, from the cache or the key service.

    Raises Unauthorized when it is unknown or revoked.
    """
    cache: KeyCache = request.app.state.key_cache
    key = cache.get(secret)
    if key is None:
        # FastAPI checks every declared dependency on every request: the
        # services are read from the app state here rather than declared.
        services: Services = request.app.state.services
        key = await run_in_threadpool(services.keys.authenticate, secret)
        cache.put(secret, key)
    return key


async def metrics_reader(request: Request, settings: SettingsDep) -> None:
    """Lets a /metrics scrape through: with ``UPRES_METRICS_TOKEN`` set, only with
    ``Authorization: Bearer <token>``; without it, only from loopback clients,
    so that nothing public sees the credit totals.

    Raises Unauthorized otherwise (a wrong token counts as a failed
    authentication of the address), RateLimited past the failed-auth limit.
    """
    if settings.metrics_token is None:
        if not _is_loopback(request.client.host if request.client else None):
            raise Unauthorized(
                "/metrics answers loopback clients only unless UPRES_METRICS_TOKEN is set"
            )
        return
    # Read by hand, not through a declared security scheme: the operation stays
    # public in the OpenAPI document, as it is for loopback clients by default.
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        presented = ""
    async with counted_failures(request):
        if not hmac.compare_digest(presented.encode(), settings.metrics_token.encode()):
            raise Unauthorized("/metrics needs Authorization: Bearer <UPRES_METRICS_TOKEN>")


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MetricsReader = Depends(metrics_reader)


async def get_task_service(services: ServicesDep) -> TaskUseCases:
    return services.tasks


AuthenticatedKey = Annotated[ApiKey, Depends(authenticated_key)]
TaskServiceDep = Annotated[TaskUseCases, Depends(get_task_service)]


def get_upload_service(services: ServicesDep) -> UploadService:
    """Raises NotFound when this API takes no uploads."""
    if services.uploads is None:
        raise NotFound("Uploads are not available on this server")
    return services.uploads


UploadServiceDep = Annotated[UploadService, Depends(get_upload_service)]
