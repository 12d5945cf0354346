"""Real HTTP(S) servers on 127.0.0.1 for network tests: inputs and callback receivers."""

from __future__ import annotations

import re
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    """Takes a client hanging up mid-response (what the time-limit tests make
    clients do) as normal; any other handler error is printed as usual."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class _ServedThread:
    """A threaded HTTP server run in a thread between ``__enter__`` and ``__exit__``."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None
    ) -> None:
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _start(self) -> None:
        self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass(frozen=True, kw_only=True)
class Route:
    """What the local test server answers for one path; ``after_head`` runs once the
    status line and headers are sent, before the body (a test moves its clock there)."""

    body: bytes = b""
    status: int = 200
    ranges: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    send_length: bool = True
    after_head: Callable[[], None] | None = None


class LocalHttpServer(_ServedThread):
    """A real threaded HTTP server on 127.0.0.1 with Range support, for network tests.

    ``routes`` maps a path to its ``Route``; ``bytes_sent`` counts the body bytes answered
    per path and ``requests`` logs (path, Range header) pairs.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.bytes_sent: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        super().__init__(_make_handler(self))

    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def log_request(self, path: str, range_header: str | None) -> None:
        # Logged on arrival, before the answer: a client that has its answer
        # (and a test asserting on this log) never races the server's thread.
        with self._lock:
            self.requests.append((path, range_header))

    def count(self, path: str, sent: int) -> None:
        with self._lock:
            self.bytes_sent[path] = self.bytes_sent.get(path, 0) + sent

    def __enter__(self) -> LocalHttpServer:
        self._start()
        return self


def _make_handler(owner: LocalHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            route = owner.routes.get(self.path.split("?")[0], Route(status=404))
            wanted = self.headers.get("Range")
            owner.log_request(self.path, wanted)
            time.sleep(route.delay_s)
            body, status = route.body, route.status
            extra: list[tuple[str, str]] = list(route.headers)
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
            if status == 200 and route.ranges and match:
                start = int(match.group(1))
                end = min(int(match.group(2) or len(body) - 1), len(body) - 1)
                if start >= len(body):
                    status, body = 416, b""
                    extra.append(("Content-Range", f"bytes */{len(route.body)}"))
                else:
                    status, body = 206, body[start : end + 1]
                    extra.append(("Content-Range", f"bytes {start}-{end}/{len(route.body)}"))
            self.send_response(status)
            for name, value in extra:
                self.send_header(name, value)
            if route.send_length:
                self.send_header("Content-Length", str(len(body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if route.after_head is not None:
                route.after_head()
            owner.count(self.path, len(body))
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


@dataclass(frozen=True, kw_only=True)
class Received:
    """One request a ``WebhookReceiver`` got: when (monotonic), its headers and body."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver(_ServedThread):
    """A real HTTP or HTTPS (with ``tls``) callback receiver on 127.0.0.1.

    The n-th request is answered with ``statuses[n]`` (the last one repeats)
    after ``delay_s``; ``headers`` go on every answer. ``received`` logs them.
    """

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        statuses: tuple[int, ...] = (200,),
        delay_s: float = 0.0,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.statuses, self.delay_s, self.headers = statuses, delay_s, headers
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._scheme = "https" if tls is not None else "http"
        super().__init__(_receiver_handler(self), tls=tls)

    def url(self, path: str = "/hook", *, host: str = "127.0.0.1") -> str:
        return f"{self._scheme}://{host}:{self.port}{path}"

    def record(self, received: Received) -> int:
        """Log a request; return the status to answer it with."""
        with self._lock:
            self.received.append(received)
            index = min(len(self.received), len(self.statuses)) - 1
        return self.statuses[index]

    def __enter__(self) -> WebhookReceiver:
        self._start()
        return self


def _receiver_handler(owner: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = owner.record(
                Received(
                    at=time.monotonic(),
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
            )
            time.sleep(owner.delay_s)
            try:
                self.send_response(status)
                for name, value in owner.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                return  # the sender gave up waiting (a timeout test)

    return Handler
