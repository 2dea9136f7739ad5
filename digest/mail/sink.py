"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives: for the demo and tests."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class SinkHandler:
    """Stores every message; `outbox` also writes each one as .eml plus .html preview."""

    outbox: Path | None = None
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        got = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content))
        with self.lock:
            self.messages.append(got)
            n = len(self.messages)
        if self.outbox is not None:
            self.outbox.mkdir(parents=True, exist_ok=True)
            stem = f"{n:04d}-" + re.sub(r"[^A-Za-z0-9._-]", "_", got.recipients[0])[:80]
            got.path = self.outbox / f"{stem}.eml"
            got.path.write_bytes(got.data)
            html = got.message.get_body(("html",))
            if html is not None:
                (self.outbox / f"{stem}.html").write_text(html.get_content(), encoding="utf-8")
        return "250 Message accepted for delivery"


class SmtpSink:
    """`with SmtpSink() as sink:` runs an SMTP server on 127.0.0.1:sink.port until the block ends."""

    def __init__(self, handler: SinkHandler | None = None, outbox: Path | None = None):
        self.handler = handler or SinkHandler(outbox=outbox)
        self.host = "127.0.0.1"
        self.port = 0
        self.controller: Controller | None = None

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def start(self) -> SmtpSink:
        for _ in range(5):
            self.port = free_port()
            self.controller = Controller(self.handler, hostname=self.host, port=self.port)
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
