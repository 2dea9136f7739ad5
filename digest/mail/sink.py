"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives: for the demo, tests, benchmarks.

`Faults` makes it misbehave on purpose, the way real servers do: 450 for some recipients a few
times, 550 for others, a connection dropped or closed with 421 at a given transaction, slow replies.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """aiosmtpd's Controller cannot take port 0, so ask the kernel for a free port first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    path: Path | None = None  # the .eml file, when the sink writes an outbox

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def message_id(self) -> str | None:
        m = re.search(rb"^Message-ID:\s*(<[^>\r\n]+>)", self.data, re.M | re.I)
        return m.group(1).decode() if m else None


@dataclass
class Faults:
    """Misbehaviour on purpose. Transactions are counted from 1 across all connections (MAIL FROM)."""

    temporary: dict[str, int] = field(default_factory=dict)  # recipient -> 450 this many times, then accept
    reject: set[str] = field(default_factory=set)  # recipients refused with 550 5.1.1
    drop_at: set[int] = field(default_factory=set)  # at these transactions the connection just breaks
    busy_at: set[int] = field(default_factory=set)  # at these, "421 closing" and the connection closes
    delay: float = 0.0  # seconds before answering each DATA
    # (command, transaction) -> this reply instead, e.g. ("RCPT", 2): "421 4.3.2 busy"; MAIL, RCPT or DATA
    # (after the message is read). A 421 reply also closes the connection, as servers do.
    replies: dict[tuple[str, int], str] = field(default_factory=dict)


@dataclass
class SinkHandler:
    """Stores every message; `outbox` also writes each one as .eml plus .html preview."""

    outbox: Path | None = None
    faults: Faults = field(default_factory=Faults)
    keep: bool = True  # False: only count (benchmarks)
    pipelining: bool = True  # offer PIPELINING (RFC 2920) as Postfix does; aiosmtpd reads commands in turn
    messages: list[Received] = field(default_factory=list)
    received: int = 0
    transactions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):  # noqa: N802 (aiosmtpd's name)
        with self.lock:
            self.transactions += 1
            n = self.transactions
        if n in self.faults.drop_at:
            server.transport.abort()  # no reply at all: the client sees the connection break
            return "421 4.4.2 connection dropped"
        if n in self.faults.busy_at:
            _close_after_reply(server)
            return "421 4.3.2 Service shutting down, closing transmission channel"
        session.transaction = n
        if (reply := self._reply(server, "MAIL", n)) is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if (reply := self._reply(server, "RCPT", getattr(session, "transaction", 0))) is not None:
            return reply
        key = address.lower()
        if key in self.faults.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        with self.lock:
            left = self.faults.temporary.get(key, 0)
            if left > 0:
                self.faults.temporary[key] = left - 1
        if left > 0:
            return f"450 4.2.0 <{address}>: Recipient address rejected: mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        if (reply := self._reply(server, "DATA", getattr(session, "transaction", 0))) is not None:
            return reply
        got = Received(envelope.mail_from, list(envelope.rcpt_tos),
                       bytes(envelope.original_content or envelope.content))
        with self.lock:
            self.received += 1
            n = self.received
            if self.keep:
                self.messages.append(got)
        if self.outbox is not None:
            self.outbox.mkdir(parents=True, exist_ok=True)
            stem = f"{n:04d}-" + re.sub(r"[^A-Za-z0-9._-]", "_", got.recipients[0])[:80]
            got.path = self.outbox / f"{stem}.eml"
            got.path.write_bytes(got.data)
            html = got.message.get_body(("html",))
            if html is not None:
                (self.outbox / f"{stem}.html").write_text(html.get_content(), encoding="utf-8")
        return "250 Message accepted for delivery"

    def _reply(self, server, command: str, transaction: int) -> str | None:
        """The reply `faults.replies` sets for this command in this transaction (closing on 421), or None."""
        reply = self.faults.replies.get((command, transaction))
        if reply is not None and reply.startswith("421"):
            _close_after_reply(server)
        return reply


def _close_after_reply(server) -> None:
    """Close the connection once the reply being returned has gone out (closing now would lose it)."""
    asyncio.get_running_loop().call_soon(server.transport.close)


class SmtpSink:
    """`with SmtpSink() as sink:` runs an SMTP server on 127.0.0.1:sink.port until the block ends.

    Extra keyword arguments go to aiosmtpd's Controller: `ssl_context` (implicit TLS), `tls_context`
    and `require_starttls` (STARTTLS), `authenticator` and `auth_required` (AUTH).
    """

    def __init__(self, handler: SinkHandler | None = None, outbox: Path | None = None,
                 faults: Faults | None = None,
                 **server_options: Any):
        self.handler = handler or SinkHandler(outbox=outbox, faults=faults or Faults())
        self.host = "127.0.0.1"
        self.port = 0
        self.server_options = server_options
        self.controller: Controller | None = None

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def start(self) -> SmtpSink:
        for _ in range(5):
            self.port = free_port()
            self.controller = Controller(self.handler, hostname=self.host, port=self.port,
                                         **self.server_options)
            try:
                self.controller.start()
                return self
            except (OSError, RuntimeError):
                continue
        raise RuntimeError("could not start the SMTP sink on a free port")

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
