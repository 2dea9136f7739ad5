"""A webhook receiver cannot hold a run or park a delivery for years (issue 23, item 9): a real HTTP
server on loopback that trickles its reply, sends a huge error body or asks for an absurd Retry-After.
`webhook_timeout` is a deadline for the whole post, a reply is read to 64 KiB at most, and a
Retry-After is obeyed up to an hour."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from digest.delivery import sender
from digest.mail.transport import PermanentFailure, TemporaryFailure
from digest.mail.webhook import MAX_BODY, MAX_RETRY_AFTER, WebhookTransport, retry_after
from digest.records import DeliveryStatus
from digest.store.models import Delivery
from tests.factories import add_papers, all_rows, plan_editions
from tests.test_webhooks import add_hook, webhook_settings

HUGE = 50 * 1024 * 1024


class Receiver:
    """A raw HTTP/1.1 server on loopback answering every post as `mode` says, and noting per connection
    how many bytes of its reply went out and whether all of them did."""

    def __init__(self, mode: str, retry_after_value: str = ""):
        self.mode, self.retry_after_value = mode, retry_after_value
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.sent: list[int] = []
        self.finished: list[bool] = []
        self.done = threading.Event()  # the first connection's reply ended (written whole, or cut)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)

    def _answer(self, conn: socket.socket) -> None:
        index = len(self.sent)
        self.sent.append(0)
        self.finished.append(False)
        try:
            self._read_request(conn)
            for piece in self._reply():
                conn.sendall(piece)
                self.sent[index] += len(piece)
                if self.stop.is_set():
                    return
            self.finished[index] = True
        except OSError:  # the client hung up: what it read is what it read
            pass
        finally:
            conn.close()
            self.done.set()

    def _reply(self):
        if self.mode == "trickle-body":  # headers at once, then a byte every 0.2 s: 40 s for the whole
            yield b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\n"
            for _ in range(200):
                time.sleep(0.2)
                yield b"k"
        elif self.mode == "trickle-head":  # the status line, then a header line every 0.2 s
            yield b"HTTP/1.1 200 OK\r\n"
            for i in range(200):
                time.sleep(0.2)
                yield f"X-Slow-{i}: 1\r\n".encode()
            yield b"Content-Length: 2\r\n\r\nok"
        elif self.mode == "huge":  # an error page of 50 MB
            yield (f"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                   f"Content-Length: {HUGE}\r\n\r\n").encode()
            chunk = b"x" * 65536
            for _ in range(HUGE // len(chunk)):
                yield chunk
        elif self.mode == "redirect":
            yield b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://x/\r\nContent-Length: 0\r\n\r\n"
        elif self.mode == "retry-after":
            yield f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: {self.retry_after_value}\r\n" \
                  "Content-Length: 4\r\n\r\nbusy".encode()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def receiver(request):
    made = []

    def make(mode: str, value: str = "") -> Receiver:
        made.append(Receiver(mode, value))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.mark.parametrize("mode", ["trickle-body", "trickle-head"])
def test_a_trickling_receiver_is_cut_off_at_the_deadline(receiver, mode):
    hook = receiver(mode)
    transport = WebhookTransport(timeout=1.0)
    with pytest.raises(TemporaryFailure, match=r"timed out after 1 s"):
        transport.send(b'{"text": "hi"}', "", hook.url)
    transport.close()
    assert hook.done.wait(10)  # the server's next byte found the connection closed
    assert hook.finished == [False]  # the reply was never read to its end


def test_a_huge_error_body_is_read_only_to_its_first_64_kib(receiver):
    hook = receiver("huge")
    transport = WebhookTransport(timeout=30.0)
    with pytest.raises(TemporaryFailure) as err:
        transport.send(b'{"text": "hi"}', "", hook.url)
    transport.close()
    assert str(err.value).startswith("HTTP 500 Internal Server Error: xxxx") and len(str(err.value)) < 300
    assert hook.done.wait(60)
    assert hook.finished == [False] and hook.sent[0] < HUGE  # the rest was never read
    assert MAX_BODY == 64 * 1024


@pytest.mark.parametrize("value", ["9999999999", "99999999999999999999", "Fri, 31 Dec 2343 23:59:59 GMT",
                                   "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_an_absurd_retry_after_is_capped_at_an_hour(receiver, value):
    assert retry_after(value) == MAX_RETRY_AFTER == 3600.0
    hook = receiver("retry-after", value)
    transport = WebhookTransport(timeout=5.0)
    with pytest.raises(TemporaryFailure) as err:
        transport.send(b"{}", "", hook.url)
    transport.close()
    assert err.value.retry_after == 3600.0 and err.value.code == 429


def test_retry_after_through_the_ledger_waits_at_most_an_hour(db, settings_for, tmp_path, receiver):
    hook = receiver("retry-after", "9999999999")
    settings = webhook_settings(settings_for, db, tmp_path)

    class Server:  # what tests/test_webhooks.add_hook takes: a base URL
        url = hook.url.removesuffix("/hook")

    add_hook(db, settings, Server, "generic", "T429")
    plan_editions(db, settings, add_papers(db, 2))
    report = sender.send(db, settings)
    assert report.retried == 1
    row = all_rows(db, Delivery)[0]
    assert row.status == DeliveryStatus.RETRY
    assert row.next_attempt_at <= datetime.now(UTC) + timedelta(hours=1)


def test_a_redirect_still_fails_for_good(receiver):
    """The bounded read keeps what each status means (a 3xx is the receiver's answer, not a fault)."""
    hook = receiver("redirect")
    with pytest.raises(PermanentFailure, match="HTTP 301"):
        WebhookTransport(timeout=5.0).send(b"{}", "", hook.url)
