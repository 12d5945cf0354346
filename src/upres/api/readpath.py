"""The polling clients' shortcut: ``GET /v1/tasks/{id}`` and ``GET /v1/credits``
answered before FastAPI's routing when the request is an ordinary poll.

Polls are most of an API's traffic (the hosted API's clients poll every few
seconds), and FastAPI's per-request machinery (routing, dependency solving, its
exception and exit-stack layers) costs several times the indexed lookup it wraps
(docs/BENCHMARKS.md). This plain ASGI layer answers those two reads itself when
nothing about the request needs a decision of the routes: a GET without a body,
a bearer key the key cache remembers, from an address that has not spent its
failed-authentication budget. It spends the key's rate limit, reads through the
same services and renders with the same functions as the routes, so its answers
are theirs byte for byte (tests/unit/test_api_readpath.py compares them).
Anything else (a new or unknown key, a refused address, another method, a body)
goes on to the routes, which decide it; nothing is spent before that hand-over.

It runs inside ``RequestContextMiddleware`` (request id, rate-limit headers,
metrics, the last-resort 500) and outside the body size limit.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import partial

from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers, State
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from upres.api.deps import Services, failures_address, store_read
from upres.api.errors import upres_error_response
from upres.api.keycache import KeyCache
from upres.api.ratelimit import RateLimiter
from upres.api.routes import credits, tasks
from upres.api.routes._task_response import task_response
from upres.api.routes.credits import CREDITS_PATH, credits_response
from upres.api.routes.tasks import TASK_PATH
from upres.domain.accounts import ApiKey
from upres.errors import UpresError

# What Starlette's ``{task_id}`` matches: one path segment.
_TASK_PATH = re.compile(r"/v1/tasks/([^/]+)")

Read = Callable[[Services, ApiKey], Awaitable[Response]]


async def _task(services: Services, key: ApiKey, *, task_id: str) -> Response:
    task = await store_read(services, services.tasks.get, key=key, task_id=task_id)
    return task_response(services.renderer, task)


async def _credits(services: Services, key: ApiKey) -> Response:
    account = await store_read(services, services.store.get_account, key.account_id)
    return credits_response(account)


class ReadPath:
    """Answers the polls it can (see the module); passes every other request on.

    An answered poll names its route in the scope, as routing would, for the metrics.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        key_cache: KeyCache,
        limiter: RateLimiter,
        auth_limiter: RateLimiter,
    ) -> None:
        self.app = app
        self._keys = key_cache
        self._limiter = limiter
        self._failures = auth_limiter
        self._task_route = _get_route(tasks.router, TASK_PATH)
        self._credits_route = _get_route(credits.router, CREDITS_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = self._read_of(scope)
        response = None
        if asked is not None:
            route, read = asked
            try:
                response = await self._answer(scope, read)
            except UpresError as error:
                scope["app"].state.metrics.observe_error(error)
                response = upres_error_response(error, request_id=scope["state"]["request_id"])
        if response is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        await response(scope, receive, send)

    def _read_of(self, scope: Scope) -> tuple[BaseRoute, Read] | None:
        """The route and read a request asks for, when it is a poll this layer may answer."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if path == CREDITS_PATH:
            return self._credits_route, _credits
        matched = _TASK_PATH.fullmatch(path)
        if matched is None:
            return None
        return self._task_route, partial(_task, task_id=matched.group(1))

    async def _answer(self, scope: Scope, read: Read) -> Response | None:
        """The poll's response; None when the routes must decide it (nothing spent then).

        Raises what the routes would raise past that point (RateLimited, the read's errors).
        """
        headers = Headers(scope=scope)
        if "content-length" in headers or "transfer-encoding" in headers:
            return None
        scheme, secret = get_authorization_scheme_param(headers.get("authorization"))
        if scheme.lower() != "bearer" or not secret:
            return None
        if await self._failures.exhausted(failures_address(scope)) is not None:
            return None
        key = self._keys.get(secret)
        if key is None:
            return None
        state: State = scope["app"].state
        scope["state"]["rate_limit"] = await self._limiter.hit(key.id)
        return await read(state.services, key)


def _get_route(router: APIRouter, path: str) -> BaseRoute:
    """The router's GET route of ``path``."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and "GET" in (route.methods or ()):
            return route
    raise LookupError(f"no GET {path}")
