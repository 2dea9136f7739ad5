"""A fault-injecting SMTP relay for the tests: a small asyncio server whose answer is chosen per stage.

    with FaultRelay(Script(rcpt="554 5.7.1 Relay access denied")) as relay:
        ... send to 127.0.0.1:relay.port ...

Each stage (greeting, EHLO, MAIL, RCPT, DATA, end of data) answers what the script says: a reply line
("250 2.1.5 Ok"), `STALL` (say nothing until the client gives up), or `DROP` (close the connection
without a word). At the end of data, `CRASH` takes the message and then drops the connection before
answering, and `HANG` takes it and then says nothing: the two ways a relay may hold a message its
client never heard about. An answer may also be a function of the `Turn` (stage, recipient,
transaction number, message size) returning one of those, so a script can refuse one recipient, or
the third transaction only. `size` advertises SIZE (RFC 1870): a MAIL FROM whose SIZE= is larger, or a
message that turns out larger, is refused with 552 5.3.4.

The relay keeps what it took (`messages`), the crashes and hangs by Message-ID (`lost_replies`), and
counts connections and transactions. It runs in a thread of its own, on a free loopback port.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

STALL, DROP, CRASH, HANG = "stall", "drop", "crash", "hang"
STAGES = ("greeting", "EHLO", "MAIL", "RCPT", "DATA", "end")


@dataclass(frozen=True)
class Turn:
    """Where the conversation is when the relay chooses its answer."""

    stage: str
    transaction: int  # counted from 1 across all connections (at MAIL FROM)
    recipient: str | None = None
    size: int | None = None  # the message's length, at the end of data


Answer = str | Callable[[Turn], str]


@dataclass
class Script:
    """What the relay answers at each stage (see the module's docstring)."""

    greeting: Answer = "220 faultsmtp ESMTP ready"
    ehlo: Answer = "250 faultsmtp"
    mail: Answer = "250 2.1.0 Ok"
    rcpt: Answer = "250 2.1.5 Ok"
    data: Answer = "354 End data with <CR><LF>.<CR><LF>"
    end: Answer = "250 2.0.0 Ok: queued"
    size: int | None = None  # advertise SIZE with this limit
    pipelining: bool = True
    stall_seconds: float = 30.0  # how long a stall keeps quiet (longer than any client timeout in a test)


@dataclass
class Taken:
    recipient: str
    data: bytes

    @property
    def message_id(self) -> str | None:
        m = re.search(rb"^Message-ID:\s*(<[^>\r\n]+>)", self.data, re.M | re.I)
        return m.group(1).decode() if m else None


@dataclass
class FaultRelay:
    script: Script = field(default_factory=Script)
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Taken] = field(default_factory=list)
    lost_replies: Counter = field(default_factory=Counter)  # Message-ID -> crashes and hangs after taking it
    connections: int = 0
    transactions: int = 0
    replies: list[tuple[str, str]] = field(default_factory=list)  # (stage, answer) as given, in order
    turns: list[tuple[Turn, str]] = field(default_factory=list)  # each turn and the answer it got

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------------------------ running

    def __enter__(self) -> FaultRelay:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            server = self._loop.run_until_complete(asyncio.start_server(self._session, self.host, 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            server.close()
            for w in list(self._writers):
                w.transport.abort()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="faultsmtp", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("faultsmtp did not start")
        return self

    def __exit__(self, *exc) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def taken(self, recipient: str) -> int:
        """How many copies of mail to `recipient` the relay took."""
        return sum(1 for m in self.messages if m.recipient == recipient)

    # ------------------------------------------------------------------------------ one session

    def _answer(self, answer: Answer, turn: Turn) -> str:
        text = answer(turn) if callable(answer) else answer
        with self._lock:
            self.replies.append((turn.stage, text))
            self.turns.append((turn, text))
        return text

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with self._lock:
            self.connections += 1
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _say(self, writer: asyncio.StreamWriter, text: str) -> bool:
        """Give an answer; False when the session is over (dropped, or stalled until the client left)."""
        if text == DROP:
            writer.transport.abort()
            return False
        if text in (STALL, HANG):
            await asyncio.sleep(self.script.stall_seconds)
            writer.transport.abort()
            return False
        writer.write(text.encode() + b"\r\n")
        await writer.drain()
        return not text.startswith("421")

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.script
        if not await self._say(writer, self._answer(s.greeting, Turn("greeting", self.transactions))):
            return
        n, recipient, size_given, mail_ok = 0, None, None, False
        while line := await reader.readline():
            verb, _, arg = line.decode("ascii", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                text = self._answer(s.ehlo, Turn("EHLO", n))
                if verb == "EHLO" and text.startswith("250"):
                    text = self._extensions(text)
            elif verb == "MAIL":
                with self._lock:
                    self.transactions += 1
                    n = self.transactions
                recipient = None
                m = re.search(r"SIZE=(\d+)", arg, re.I)
                size_given = int(m.group(1)) if m else None
                if s.size and size_given and size_given > s.size:
                    text = "552 5.3.4 Message size exceeds fixed maximum message size"
                else:
                    text = self._answer(s.mail, Turn("MAIL", n))
                mail_ok = text.startswith("250")
            elif verb == "RCPT" and not mail_ok:
                text = "503 5.5.1 Error: need MAIL command"
            elif verb == "RCPT":
                m = re.search(r"<([^>]*)>", arg)
                recipient = m.group(1).lower() if m else arg
                text = self._answer(s.rcpt, Turn("RCPT", n, recipient))
                if not text.startswith("25"):
                    recipient = None
            elif verb == "DATA":
                text = (self._answer(s.data, Turn("DATA", n, recipient)) if recipient
                        else "554 5.5.1 No valid recipients")
                if text.startswith("354"):
                    if not await self._say(writer, text):
                        return
                    if not await self._take(reader, writer, n, recipient):
                        return
                    recipient, mail_ok = None, False
                    continue
            elif verb == "RSET":
                recipient, mail_ok, text = None, False, "250 2.0.0 Ok"
            elif verb == "NOOP":
                text = "250 2.0.0 Ok"
            elif verb == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                text = "502 5.5.2 Command not recognized"
            if not await self._say(writer, text):
                return

    def _extensions(self, first: str) -> str:
        exts = [first[4:] if len(first) > 4 else "faultsmtp"]
        if self.script.pipelining:
            exts.append("PIPELINING")
        if self.script.size:
            exts.append(f"SIZE {self.script.size}")
        exts.append("8BITMIME")
        return "\r\n".join(f"250{'-' if i < len(exts) - 1 else ' '}{e}" for i, e in enumerate(exts))

    async def _take(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int,
                    recipient: str | None) -> bool:
        """Read the message up to the lone dot, then answer the end of data."""
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                return False
            if line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b"..") else line)
        data = b"".join(lines)
        if self.script.size and len(data) > self.script.size:
            text = "552 5.3.4 Message too big for system"
        else:
            text = self._answer(self.script.end, Turn("end", n, recipient, len(data)))
        taken = Taken(recipient or "", data)
        if text.startswith("2") or text in (CRASH, HANG):
            with self._lock:
                self.messages.append(taken)
                if text in (CRASH, HANG):
                    self.lost_replies[taken.message_id] += 1
        if text == CRASH:
            writer.transport.abort()
            return False
        return await self._say(writer, text)
