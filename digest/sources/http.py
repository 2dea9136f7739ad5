"""The one HTTP client every source uses: timeouts, a descriptive User-Agent, retries with exponential
backoff and jitter (connection errors, timeouts, 5xx, 429 with Retry-After), conditional requests
(ETag / Last-Modified) and a cap on response size."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from digest.config import HttpSettings
from digest.sources import SourceError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass
class Fetched:
    url: str
    status: int
    content: bytes = b""
    content_type: str = ""
    not_modified: bool = False  # 304: what we stored for this URL is still current
    validators: dict[str, str] = field(default_factory=dict)  # {"etag", "last_modified"} to keep
    attempts: int = 1


class HttpClient:
    """A small wrapper over one `httpx.Client`. Returns the final response for any status except the
    retryable ones; raises `SourceError` once retries are spent or the transport keeps failing."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings or HttpSettings()
        self.sleep = sleep
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.settings.timeout),
            headers={"User-Agent": self.settings.user_agent},
            follow_redirects=True,
            max_redirects=5,
            transport=transport,
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        params: Mapping[str, str | int] | None = None,
        *,
        validators: Mapping[str, str] | None = None,
        accept: str | None = None,
    ) -> Fetched:
        headers: dict[str, str] = {}
        if accept:
            headers["Accept"] = accept
        if validators:
            if validators.get("etag"):
                headers["If-None-Match"] = validators["etag"]
            if validators.get("last_modified"):
                headers["If-Modified-Since"] = validators["last_modified"]
        attempts = self.settings.retries + 1
        shown = url
        for attempt in range(1, attempts + 1):
            try:
                with self._client.stream("GET", url, params=params, headers=headers) as resp:
                    shown = str(resp.request.url)
                    if resp.status_code in RETRY_STATUS:
                        if attempt < attempts:
                            wait = self._retry_after(resp) if resp.status_code in (429, 503) else None
                            self._wait(attempt, wait, f"HTTP {resp.status_code}", shown)
                            continue
                        raise SourceError(f"GET {shown}: HTTP {resp.status_code} after {attempt} attempts")
                    content = b"" if resp.status_code == 304 else self._read(resp, shown)
                    return Fetched(
                        url=shown,
                        status=resp.status_code,
                        content=content,
                        content_type=resp.headers.get("content-type", ""),
                        not_modified=resp.status_code == 304,
                        validators=_validators(resp.headers),
                        attempts=attempt,
                    )
            except httpx.TransportError as err:  # connect/read errors, timeouts, resets, cut bodies
                reason = _describe(err)
                if attempt < attempts and not isinstance(err, httpx.UnsupportedProtocol):
                    self._wait(attempt, None, reason, shown)
                    continue
                raise SourceError(f"GET {shown}: {reason} after {attempt} attempts") from None
            except (httpx.HTTPError, httpx.InvalidURL) as err:  # bad URL, redirect loop, broken gzip
                raise SourceError(f"GET {shown}: {type(err).__name__} ({str(err)[:200]})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, resp: httpx.Response, shown: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise SourceError(f"GET {shown}: response larger than {self.settings.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _retry_after(self, resp: httpx.Response) -> float | None:
        value = resp.headers.get("retry-after", "").strip()
        if not value:
            return None
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())

    def _wait(self, attempt: int, retry_after: float | None, reason: str, url: str) -> None:
        s = self.settings
        if retry_after is not None:
            delay = min(retry_after, s.max_backoff)
        else:  # exponential backoff with "equal jitter": half fixed, half random
            base = min(s.max_backoff, s.backoff * 2 ** (attempt - 1))
            delay = base / 2 + random.uniform(0, base / 2)
        log.info("GET %s: %s; retry %d/%d in %.2fs", url, reason, attempt, s.retries, delay)
        if delay > 0:
            self.sleep(delay)


def _validators(headers: httpx.Headers) -> dict[str, str]:
    out = {}
    if headers.get("etag"):
        out["etag"] = headers["etag"]
    if headers.get("last-modified"):
        out["last_modified"] = headers["last-modified"]
    return out


def _describe(err: httpx.TransportError) -> str:
    kind = {
        httpx.ConnectTimeout: "connect timeout",
        httpx.ReadTimeout: "read timeout",
        httpx.WriteTimeout: "write timeout",
        httpx.PoolTimeout: "pool timeout",
        httpx.ConnectError: "connection failed",
        httpx.ReadError: "connection reset",
        httpx.RemoteProtocolError: "connection closed mid-response",
    }.get(type(err), type(err).__name__)
    detail = str(err).splitlines()[0][:200] if str(err) else ""
    return f"{kind} ({detail})" if detail else kind
