"""A real HTTP server on 127.0.0.1 (port 0) that replays recorded responses and injects faults.

    with ReplayServer() as srv:
        srv.add("/api/daily_papers", Reply(body=data), date="2024-10-25")
        srv.add("/api/query", [Reply(status=500), Reply(body=feed)])   # 500 then 200
        srv.add("/slow", Reply(body=b"{}", delay=2.0))                    # client times out
        srv.add("/cut", Reply(body=data, fault="truncate"))               # Content-Length lies
        srv.add("/rst", Reply(fault="reset"))                             # TCP reset, no response
        srv.url                                                            # "http://127.0.0.1:PORT"
        srv.requests                                                       # what the clients asked
        srv.check = lambda seen: "too long" or None                         # POST bodies: 400 if it says so
        srv.on_request = lambda seen: ...                                  # called before each reply

A route matches a path and a subset of query parameters; the most specific match wins, the newest
among equals. A list of replies is served in order, the last one repeating. A reply with an `etag`
answers a matching `If-None-Match` with 304. Unmatched requests get 404.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0  # seconds before anything is sent (timeouts)
    # None | "reset" (RST, nothing sent) | "truncate" (half the body, Content-Length of the whole)
    # | "close" (half the body, no Content-Length, then close: a cut the client cannot see)
    fault: str | None = None
    etag: str | None = None

    def data(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""


class _Route:
    def __init__(self, path: str, replies: list[Reply], params: dict[str, str]):
        self.path, self.replies, self.params, self.served = path, replies, params, 0

    def matches(self, path: str, params: dict[str, str]) -> bool:
        return path == self.path and all(params.get(k) == v for k, v in self.params.items())

    def next(self) -> Reply:
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # a client hung up; part of the faults we play
            return
        super().handle_error(request, client_address)


class ReplayServer:
    def __init__(self) -> None:
        self.routes: list[_Route] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        # POST: a payload check run before the route (a message means 400 with it, as the services
        # answer a malformed payload), and a hook called with each request before it is answered
        self.check: Callable[[Seen], str | None] | None = None
        self.on_request: Callable[[Seen], None] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms stall between headers and body

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                try:
                    server._handle(self)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up first (timeouts)
                    self.close_connection = True

            do_POST = do_GET  # noqa: N815

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, replies: Reply | list[Reply], **params: str | int) -> None:
        """Serve `replies` for GET or POST `path` when the query has these parameters (others ignored)."""
        replies = replies if isinstance(replies, list) else [replies]
        with self._lock:
            self.routes.append(_Route(path, replies, {k: str(v) for k, v in params.items()}))

    def hits(self, path: str, **params: str | int) -> list[Seen]:
        want = {k: str(v) for k, v in params.items()}
        return [r for r in self.requests if r.path == path
                and all(r.params.get(k) == v for k, v in want.items())]

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(h.headers.get("Content-Length") or 0)
        seen = Seen(h.command, parts.path, params, {k.lower(): v for k, v in h.headers.items()},
                    h.rfile.read(length) if length else b"")
        problem = self.check(seen) if self.check is not None and h.command == "POST" else None
        with self._lock:
            self.requests.append(seen)
            candidates = [r for r in self.routes if r.matches(parts.path, params)]
            # the most specific route wins; between equals, the one added last (so a test can "heal")
            route = max(reversed(candidates), key=lambda r: len(r.params), default=None)
            reply = route.next() if route else Reply(status=404, body=b"not found", content_type="text/plain")
        if problem:
            reply = Reply(status=400, body=problem, content_type="text/plain")
        if self.on_request is not None:
            self.on_request(seen)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.fault == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            h.connection.close()
            return
        if reply.etag and h.headers.get("If-None-Match") == reply.etag:
            h.send_response(304)
            h.send_header("ETag", reply.etag)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        body = reply.data()
        h.send_response(reply.status)
        h.send_header("Content-Type", reply.content_type)
        if reply.etag:
            h.send_header("ETag", reply.etag)
        for k, v in reply.headers.items():
            h.send_header(k, v)
        if reply.fault == "close":
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.close_connection = True
            return
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if reply.fault == "truncate":
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(body)


def arxiv_fixture(path: Path) -> tuple[dict[str, str], Reply]:
    """A recorded arXiv response ({url, status_code, body}) as the query parameters that identify it
    and the reply to give; the body was stored latin-1-decoded, so it is re-encoded the same way."""
    rec = json.loads(path.read_text())
    query = dict(parse_qsl(urlsplit(rec["url"]).query, keep_blank_values=True))
    params = {k: query[k] for k in ("start", "max_results") if k in query}
    reply = Reply(status=rec["status_code"], body=rec["body"].encode("latin-1"),
                  content_type="application/atom+xml")
    return params, reply
