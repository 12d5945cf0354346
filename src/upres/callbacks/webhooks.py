"""Callback delivery: signed POSTs of the task body, with the spec's retries.

Per the spec: HTTPS only (checked at submission), a 10 s timeout (for the
whole attempt: connect, TLS, request and response head), any 2xx is
success, and a failure is retried 3 times, 1, 2 and 4 s after it. Redirects
are never followed (a 3xx is a failure): following one would let a receiver
point the server elsewhere. Connections go through the address policy's
transport, so a callback host that rebinds to a private address is refused.

On top of the unchanged body, upres adds Standard Webhooks headers
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) so a receiver
can check that a callback came from this server and was not replayed.

Each attempt is made under a lease on its outbox item (``claim_callbacks``),
so dispatchers of several processes sharing one database never send an item
at the same time. Delivery is at least once: a dispatcher that dies after a
POST but before recording it leaves the item to be sent again once its lease
runs out, with the same ``webhook-id``, which receivers can dedupe on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx

from upres.clock import Clock, holder_id, utc_now
from upres.domain.accounts import Account
from upres.domain.records import CallbackAttempt, OutboxItem
from upres.errors import InvalidUrl, LeaseLost, UpresError
from upres.inputs.netpolicy import AddressPolicy, policy_client, ssl_context, total_deadline
from upres.inputs.urlpolicy import CALLBACK_URL, parse_url

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "upres-webhooks/1"

# A claim covers one attempt, started at once (a dispatcher claims no more
# than it can start). The POST is bounded by the sender's timeout (a total
# deadline); recording it is one write, which may queue behind SQLite's 15 s
# busy timeout. The margin covers that, the account lookup and a stalled
# process: 60 s at the default 10 s timeout. Longer only delays taking over
# from a dispatcher that died mid-attempt; shorter risks a second dispatcher
# sending while the first is still within its deadline.
LEASE_MARGIN_S = 50.0


class CallbackStore(Protocol):
    """The callback outbox, and the accounts whose secrets sign its items: the
    part of the store that delivery needs. A task's outbox row is written in the
    transaction that ends the task."""

    def get_account(self, account_id: str) -> Account:
        """Raises NotFound when there is no such account."""
        ...

    def claim_callbacks(
        self, *, dispatcher_id: str, limit: int, lease_s: float
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` due items (oldest due first) to ``dispatcher_id``
        for one attempt each, ``lease_s`` long.

        A leased item is not due for anyone until its holder records the
        attempt or the lease runs out (a dispatcher that died is thus replaced),
        so concurrent claimers, in any process, get disjoint items.
        """
        ...

    def record_callback_attempt(
        self, attempt: CallbackAttempt, *, dispatcher_id: str, next_attempt_at: datetime | None
    ) -> None:
        """Record the claimed try and release the item: done once delivered, or
        given up when ``next_attempt_at`` is None, else due again then.

        Raises NotFound when the item does not exist, LeaseLost (and records
        nothing) when ``dispatcher_id`` no longer holds it for this attempt:
        another dispatcher claimed it after the lease ran out, or it ended.
        """
        ...


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the decoded base64 part).

    A secret that is not of that form is used as its UTF-8 bytes.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return secret.encode()


def sign(secret: str, *, msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(signing_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: str | bytes,
    *,
    tolerance_s: float | None = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``headers`` carry a valid Standard Webhooks signature of ``body``.

    ``headers`` are looked up case-insensitively. With ``tolerance_s``, a
    timestamp further than that from ``now`` (default: the clock) is refused.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp = lower.get("webhook-id"), lower.get("webhook-timestamp", "")
    if msg_id is None or not stamp.isdigit():
        return False
    moment = time.time() if now is None else now
    if tolerance_s is not None and abs(moment - int(stamp)) > tolerance_s:
        return False
    text = body.decode() if isinstance(body, bytes) else body
    expected = sign(secret, msg_id=msg_id, timestamp=int(stamp), body=text)
    offered = lower.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


class CallbackSender:
    """Delivers outbox items, one claimed and recorded attempt at a time.

    ``dispatcher_id`` (default: a new unique one) names its claims; each
    lasts ``timeout_s`` + ``LEASE_MARGIN_S``. ``batch_size`` bounds the
    attempts of one ``deliver_due``.
    """

    def __init__(
        self,
        store: CallbackStore,
        policy: AddressPolicy,
        *,
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
        retry_delays_s: Sequence[float] = (1.0, 2.0, 4.0),
        clock: Clock = utc_now,
        batch_size: int = 50,
        dispatcher_id: str | None = None,
    ) -> None:
        self.dispatcher_id = dispatcher_id or holder_id("callbacks")
        self.lease_s = timeout_s + LEASE_MARGIN_S
        self._store = store
        self._retry_delays = tuple(retry_delays_s)
        self._clock = clock
        self._batch = batch_size
        self._timeout_s = timeout_s
        self._ticks = policy.ticks
        self._client = policy_client(policy, timeout_s=timeout_s, tls=ssl_context(ca_file))

    def claim(self, *, limit: int) -> list[OutboxItem]:
        """Lease up to ``limit`` due items to this sender, one attempt each: start
        them at once, or their leases run out first."""
        return self._store.claim_callbacks(
            dispatcher_id=self.dispatcher_id, limit=limit, lease_s=self.lease_s
        )

    def deliver_due(self) -> int:
        """Attempt due items until none is left or ``batch_size`` attempts were
        made; return how many were delivered. Claims one item at a time, so
        none waits out its lease behind another's attempt."""
        delivered = 0
        for _ in range(self._batch):
            claimed = self.claim(limit=1)
            if not claimed:
                break
            delivered += self.deliver(claimed[0]).delivered
        return delivered

    def deliver(self, item: OutboxItem) -> CallbackAttempt:
        """POST a claimed ``item`` once and record the attempt with its next retry time.

        Never raises for a failed send, whatever its cause: it is recorded with
        its reason and retried 1, 2, 4 s later until the retries are spent; a
        URL the client cannot send is recorded and given up at once (it was
        stored before the URL policy refused it). Nor when this sender's
        lease ran out and another dispatcher claimed the item meanwhile: the
        attempt is then logged but not recorded, the new holder's counts.
        """
        number = item.attempts + 1
        started = self._clock()
        sent = self._post(item, started)
        delivered = sent.status is not None and 200 <= sent.status < 300
        attempt = CallbackAttempt(
            outbox_id=item.id,
            attempt=number,
            status_code=sent.status,
            error=None if delivered else sent.error,
            delivered=delivered,
            at=started,
        )
        next_at = None if sent.final else self._next_time(attempt)
        try:
            self._store.record_callback_attempt(
                attempt, dispatcher_id=self.dispatcher_id, next_attempt_at=next_at
            )
        except LeaseLost as exc:
            log.warning("callback %s attempt %d not recorded: %s", item.task_id, number, exc)
            return attempt
        log.info("callback %s attempt %d: %s", item.task_id, number, sent.error or sent.status)
        return attempt

    def close(self) -> None:
        self._client.close()

    def _next_time(self, attempt: CallbackAttempt) -> datetime | None:
        if attempt.delivered or attempt.attempt > len(self._retry_delays):
            return None
        return self._clock() + timedelta(seconds=self._retry_delays[attempt.attempt - 1])

    def _post(self, item: OutboxItem, started: datetime) -> _Sent:
        """One POST of ``item``. Never raises: every failure is the attempt's outcome."""
        try:
            url = parse_url(item.url, CALLBACK_URL)
        except InvalidUrl as exc:  # the same on every try: give up now
            return _Sent(status=None, error=exc.message, final=True)
        try:
            headers = self._headers(item, started)
            with (
                total_deadline(self._timeout_s, ticks=self._ticks),
                self._client.stream("POST", url, content=item.body, headers=headers) as r,
            ):
                return _Sent(status=r.status_code, error=_describe(r.status_code))
        except httpx.TimeoutException:
            return _Sent(status=None, error="timed out")
        except httpx.HTTPError as exc:
            return _Sent(status=None, error=f"request failed: {exc}")
        except UpresError as exc:  # AddressNotAllowed at connect, an unknown account
            return _Sent(status=None, error=exc.message)
        except Exception as exc:  # counted and retried like any failure, never a loop
            log.warning("callback %s failed unexpectedly", item.task_id, exc_info=True)
            return _Sent(status=None, error=f"request failed: {type(exc).__name__}: {exc}")

    def _headers(self, item: OutboxItem, started: datetime) -> dict[str, str]:
        secret = self._store.get_account(item.account_id).webhook_secret
        msg_id, stamp = item.message_id, int(started.timestamp())
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, msg_id=msg_id, timestamp=stamp, body=item.body),
        }


@dataclass(frozen=True, kw_only=True)
class _Sent:
    """What one POST came to: the receiver's status, or why there was none;
    ``final`` when no later try could do better."""

    status: int | None
    error: str
    final: bool = False


def _describe(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status} (redirects are not followed)"
    return f"HTTP {status}"


class CallbackDispatcher:
    """A background thread that delivers due callbacks every ``interval_s``.

    Attempts run on a small thread pool so one slow receiver (up to the
    timeout) does not hold back the others. It claims only as many items as
    it has idle workers, so each attempt starts within its lease; an item is
    never sent twice at once, by this dispatcher or any other on the database.
    """

    def __init__(
        self, sender: CallbackSender, *, interval_s: float = 0.2, workers: int = 4
    ) -> None:
        self._sender = sender
        self._interval = interval_s
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="callback")
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callback-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, wait for attempts in flight, close the sender."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)
        self._sender.close()

    def __enter__(self) -> CallbackDispatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._dispatch()
            except Exception:  # a background loop must outlive any one failure
                log.exception("callback dispatch failed; retrying")
            self._stop.wait(self._interval)

    def _dispatch(self) -> None:
        with self._lock:
            idle = self._workers - len(self._in_flight)
        if idle <= 0:
            return
        for item in self._sender.claim(limit=idle):
            with self._lock:
                # Claimed back only after its lease ran out mid-attempt: the
                # attempt in flight still holds it and records it.
                if item.id in self._in_flight:
                    continue
                self._in_flight.add(item.id)
            self._pool.submit(self._deliver, item)

    def _deliver(self, item: OutboxItem) -> None:
        try:
            self._sender.deliver(item)
        except Exception:  # the item stays due and is tried again
            log.exception("recording callback %s failed", item.id)
        finally:
            with self._lock:
                self._in_flight.discard(item.id)
