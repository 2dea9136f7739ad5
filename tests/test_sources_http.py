"""The shared HTTP client against a real local server: retries, Retry-After, validators, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from httpreplay import Reply

from digest.config import HttpSettings
from digest.sources import SourceError
from digest.sources.http import HttpClient


def client(slept: list[float], **kw) -> HttpClient:
    opts = {"timeout": 1.0, "retries": 3, "backoff": 0.5, "max_backoff": 30.0, **kw}
    return HttpClient(HttpSettings(**opts), sleep=slept.append)


def test_retry_after_seconds_and_date_are_honoured(server):
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    server.add("/x", [Reply(status=429, headers={"Retry-After": "7"}),
                      Reply(status=503, headers={"Retry-After": later}), Reply(body=b"ok")])
    slept: list[float] = []
    with client(slept) as c:
        got = c.get(server.url + "/x")
    assert (got.status, got.content, got.attempts) == (200, b"ok", 3)
    assert slept[0] == 7.0 and 15 < slept[1] <= 20


def test_retry_after_is_capped_and_backoff_grows_with_jitter(server):
    server.add("/x",
               [Reply(status=429, headers={"Retry-After": "3600"}), Reply(status=500), Reply(status=502),
                      Reply(status=504)])
    slept: list[float] = []
    with client(slept, max_backoff=10.0) as c, pytest.raises(SourceError, match="HTTP 504 after 4 attempts"):
        c.get(server.url + "/x")
    assert slept[0] == 10.0  # an hour is more than we wait
    assert 0.5 <= slept[1] <= 1.0 and 1.0 <= slept[2] <= 2.0  # backoff 0.5 * 2^n, half of it random


def test_client_errors_are_returned_not_retried(server):
    server.add("/x", Reply(status=403, body=b"forbidden"))
    slept: list[float] = []
    with client(slept) as c:
        got = c.get(server.url + "/x")
    assert got.status == 403 and slept == [] and len(server.requests) == 1


def test_headers_and_conditional_requests(server):
    server.add("/x",
               Reply(body=b"[]", etag='"v1"', headers={"Last-Modified": "Fri, 25 Oct 2024 10:00:00 GMT"}))
    with client([]) as c:
        first = c.get(server.url + "/x", {"a": 1}, accept="application/json")
        second = c.get(server.url + "/x", {"a": 1}, validators=first.validators)
    assert first.validators == {"etag": '"v1"', "last_modified": "Fri, 25 Oct 2024 10:00:00 GMT"}
    assert second.not_modified and second.status == 304 and second.content == b""
    h1, h2 = server.requests[0].headers, server.requests[1].headers
    assert h1["user-agent"].startswith("trending-digest/") and h1["accept"] == "application/json"
    assert h2["if-none-match"] == '"v1"' and h2["if-modified-since"] == "Fri, 25 Oct 2024 10:00:00 GMT"


def test_oversized_body_is_refused(server):
    server.add("/x", Reply(body=b"x" * 5000))
    with client([], max_bytes=1024) as c, pytest.raises(SourceError, match="larger than 1024 bytes"):
        c.get(server.url + "/x")


def test_bad_urls_fail_cleanly():
    with client([]) as c:
        with pytest.raises(SourceError, match="after 1 attempts"):
            c.get("ftp://example.invalid/x")
        with pytest.raises(SourceError):
            c.get("http://[::1")
