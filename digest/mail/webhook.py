"""Chat-channel webhooks (Slack, Discord, or a generic JSON receiver): the URL rules and the transport.

A webhook URL is a secret: whoever has it can post to the channel. So it is checked at the door
(`check_url`), stored sealed (`Sealer`: Fernet, keyed from the signing secret), shown only redacted
(`redact`: "https://hooks.slack.com/services/T000…"), and identified by a hash (`identity`:
"slack:3f2a9c1b7d4e"). The transport never puts it in an error, and `httpx`'s own request log line
is redacted too (`_RedactUrls`).

`WebhookTransport` posts one finished JSON payload (digest.render.webhook) and says how it went, in
the terms of every transport (digest.mail.transport): returning is accepted (2xx); 429, 5xx, 408,
a timeout or a lost connection is a `TemporaryFailure` (with the server's `Retry-After`, seconds or
an HTTP date, when it gave one, at most `MAX_RETRY_AFTER`); any other answer (4xx, a redirect) is a
`PermanentFailure`. A receiver cannot hold a run: `webhook_timeout` is a deadline for the whole
request (connect, send, every byte of the reply: `_DeadlineBackend`), and at most `MAX_BODY` bytes of a
reply are read.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
import httpx
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from digest.mail.transport import PermanentFailure, TemporaryFailure

MAX_URL_CHARS = 2000
_WORD = re.compile(r"[A-Za-z]+")  # a path segment kept whole in the redacted form ("services", "api")
_SHOWN = 4  # characters of the first secret-looking segment the redacted form keeps
_LOOPBACK_NAMES = {"localhost"}
MAX_RETRY_AFTER = 3600.0  # seconds: a receiver asking for longer is retried after an hour all the same
MAX_BODY = 64 * 1024  # bytes of a reply read (its status says what happened; the body only explains)


class WebhookError(ValueError):
    """A webhook URL or kind refused at the door, with a message fit to show (never the URL itself)."""


# ------------------------------------------------------------------------------------ the URL rules


def _loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The URL, stripped, if it can be a webhook: https (plain http only to this machine, for a local
    receiver), a host, no user or password. Errors show the redacted form only."""
    url = (url or "").strip()
    if not url:
        raise WebhookError("the webhook URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise WebhookError(f"the webhook URL is too long (max {MAX_URL_CHARS} characters)")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise WebhookError(f"not a URL: {redact(url)}") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise WebhookError(f"a webhook URL starts with https:// and names a host, not {redact(url)}")
    if parsed.scheme == "http" and not _loopback(parsed.host):
        raise WebhookError(f"a webhook URL must use https (plain http only to localhost): {redact(url)}")
    if parsed.userinfo:
        raise WebhookError(f"a webhook URL must not carry a user name or password: {redact(url)}")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise WebhookError("the webhook URL has spaces or control characters")
    return url


def identity(kind: str, url: str) -> str:
    """What a webhook subscriber is known by (its `email` column): the kind and 12 hex digits of the
    URL's SHA-256. The same URL always gives the same identity; the identity does not give the URL."""
    return f"{kind}:{hashlib.sha256(url.encode('utf-8')).hexdigest()[:12]}"


def is_identity(value: str, kinds: Iterable[str]) -> bool:
    """Whether `value` is the identity of a webhook of one of `kinds` ("slack:3f2a9c1b7d4e")."""
    kind, _, digest = value.partition(":")
    return kind in kinds and re.fullmatch(r"[0-9a-f]{12}", digest) is not None


def redact(url: str) -> str:
    """The URL as it may be shown: scheme, host, the leading all-letter path segments, then the first
    four characters of the next one and "…"; no query, no user, no port beyond the host's.

    >>> redact("https://hooks.slack.com/services/T0000/B0000/XXXX")
    'https://hooks.slack.com/services/T000…'
    """
    text = (url or "").strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return "…" if text else ""
    authority, _, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    shown = [f"{scheme}://{host}"]
    for segment in path.split("?")[0].split("#")[0].split("/"):
        if not segment:
            continue
        if _WORD.fullmatch(segment):
            shown.append(segment)
            continue
        shown.append(segment[:_SHOWN] + "…")
        break
    return "/".join(shown)


class Sealer:
    """Seals webhook URLs for the database and opens them for sending (Fernet: AES and an HMAC), with a
    key derived from the signing secret: a database read on its own does not give the URLs away.
    Given several secrets (the signing one first), it seals with the first and opens with any
    (MultiFernet): a secret set over the database's own keeps the stored URLs readable. A secret lost
    makes them unreadable (the sender fails those deliveries and says so): add the webhooks again."""

    def __init__(self, secret: str | Sequence[str]):
        keys = [secret] if isinstance(secret, str) else list(secret)
        self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(
            hashlib.sha256(b"trending-digest webhook url\0" + k.encode("utf-8")).digest())) for k in keys])

    def seal(self, url: str) -> str:
        return self._fernet.encrypt(url.encode("utf-8")).decode("ascii")

    def open(self, sealed: str | None) -> str:
        if not sealed:
            raise WebhookError("no webhook URL stored")
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise WebhookError("the stored webhook URL cannot be read with the current signing secret "
                               "(was it changed?); add the webhook again") from None


# ------------------------------------------------------------------------------------ the transport


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (RFC 9110: delay-seconds or an HTTP date), at most
    `MAX_RETRY_AFTER` (a receiver may not park a delivery for years); None if absent or unreadable. A
    date in the past means "now" (0)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,20}(\.[0-9]{1,9})?", value):  # Discord sends fractions ("1.5")
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()), MAX_RETRY_AFTER)


class _RedactUrls(logging.Filter):
    """httpx logs each request with its URL at INFO ("HTTP Request: POST https://..."): the URLs this
    process posts to are replaced by their redacted form in every record of the `httpx` logger."""

    def __init__(self) -> None:
        super().__init__()
        self.secret: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret and isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if str(a) in self.secret else a for a in record.args)
        return True


_redactor = _RedactUrls()
logging.getLogger("httpx").addFilter(_redactor)


def _scrub(text: str, url: str) -> str:
    """An error text without the URL or its secret part, however the peer quoted it."""
    parsed = httpx.URL(url)
    for secret in {url, str(parsed), parsed.path, parsed.query.decode("ascii", "replace")}:
        if len(secret) > 1:
            text = text.replace(secret, "…")
    return text


# ------------------------------------------------------------------ one deadline for a whole request

_deadline = threading.local()  # .at: time.monotonic() by which this thread's post must be done


def _left(timeout: float | None) -> float | None:
    """What an I/O step may take: its own timeout, but never past the post's deadline."""
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most what is left of the post's deadline: a
    receiver trickling its reply a byte at a time cannot keep a post going past it."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None,  # noqa: ANN001
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str):  # noqa: ANN201
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, each wrapped in a `_DeadlineStream`."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options=None) -> httpcore.NetworkStream:  # noqa: ANN001
        return _DeadlineStream(self._backend.connect_tcp(host, port, _left(timeout), local_address,
                                                         socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options=None) -> httpcore.NetworkStream:  # noqa: ANN001
        return _DeadlineStream(self._backend.connect_unix_socket(path, _left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _deadline_transport() -> httpx.HTTPTransport:
    """httpx's transport over a connection pool whose sockets keep the post's deadline. (httpx takes
    no network backend of its own: its pool, `_pool`, is replaced by one built the same way with one.)"""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(),
                                              network_backend=_DeadlineBackend())
    return transport


class WebhookTransport:
    """One HTTP client (a kept-alive connection pool) posting JSON payloads; `recipient` is the URL.

    Every post carries `Idempotency-Key: <the delivery's Message-ID>` when given, so a receiver that
    honours it can drop the one repeat a crash may cause."""

    name = "webhook"

    def __init__(self, timeout: float = 10.0, user_agent: str = "trending-digest/0.1",
                 client: httpx.Client | None = None):
        self.timeout, self.user_agent = timeout, user_agent
        self._client = client
        self.posts = 0  # how many posts were made (tests)

    def open(self) -> None:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False,
                                        headers={"User-Agent": self.user_agent},
                                        transport=_deadline_transport())

    def send(self, data: bytes, sender: str, recipient: str, key: str | None = None) -> None:
        self.open()
        assert self._client is not None
        _redactor.secret.update((recipient, str(httpx.URL(recipient))))
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        self.posts += 1
        _deadline.at = time.monotonic() + self.timeout  # the whole post, reply included
        try:
            with self._client.stream("POST", recipient, content=data, headers=headers) as response:
                body = _bounded_body(response)
        except httpx.TimeoutException:
            # the receiver may have taken it without saying so yet: a retry later, not at once
            raise TemporaryFailure(f"timed out after {self.timeout:g} s") from None
        except httpx.HTTPError as err:
            raise TemporaryFailure(_scrub(f"connection failed: {type(err).__name__}: {err}",
                                          recipient)) from None
        finally:
            _deadline.at = None
        _outcome(response, body, recipient)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _bounded_body(response: httpx.Response) -> bytes:
    """At most `MAX_BODY` bytes of the reply (decoded); the rest is never read (the connection is
    closed instead of drained)."""
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= MAX_BODY:
            return body[:MAX_BODY]
    return body


def _outcome(response: httpx.Response, body_bytes: bytes, url: str) -> None:
    """Return if the post was accepted; else raise what its status means."""
    code = response.status_code
    if 200 <= code < 300:
        return
    try:
        text = body_bytes.decode(response.charset_encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        text = body_bytes.decode("utf-8", "replace")
    body = _scrub(" ".join(text.split())[:200], url)
    text = f"HTTP {code} {response.reason_phrase}" + (f": {body}" if body else "")
    if code == 429 or code == 408 or code >= 500:
        raise TemporaryFailure(text, code, retry_after(response.headers.get("Retry-After")))
    raise PermanentFailure(text, code)
