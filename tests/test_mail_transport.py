"""SMTP transport against a real aiosmtpd server: STARTTLS, implicit TLS, AUTH, replies; rate limiter;
outbox."""

from __future__ import annotations

import copy
import shutil
import ssl
import subprocess
import time

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from digest.config import from_dict
from digest.delivery.channels import connections
from digest.mail.message import Envelope, message_bytes
from digest.mail.ratelimit import RateLimiter
from digest.mail.sink import Faults, SinkHandler, SmtpSink
from digest.mail.transport import (
    PermanentFailure,
    SmtpTransport,
    TemporaryFailure,
    TransportUnavailable,
    from_settings,
    smtp_from_settings,
)

MSG = message_bytes(Envelope(from_address="digest@example.org", to_address="ada@example.org", to_name="Ada",
                             subject="Hello", message_id="<t1@example.org>", list_id="l <l.example.org>",
                             unsubscribe_url="https://d.example.org/u/x", unsubscribe_mailto="u@example.org"),
                    "text", "<p>html</p>")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl for a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out",
                    str(d / "cert.pem")],
                   check=True, capture_output=True)
    return str(d / "cert.pem"), str(d / "key.pem")


def server_context(cert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login,
                                                   auth_data.password) == (b"digest", b"s3cret")
    return AuthResult(success=ok, handled=False)


def test_starttls_and_auth_from_settings(cert, monkeypatch):
    with SmtpSink(tls_context=server_context(cert), require_starttls=True, authenticator=authenticator,
                  auth_required=True) as sink:
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "s3cret")
        settings = from_dict({"mail": {"transport": "smtp", "smtp": {
            "host": sink.host, "port": sink.port, "security": "starttls", "username": "digest",
            "ca_file": cert[0]}}})
        t = smtp_from_settings(settings)
        t.send(MSG, "digest@example.org", "ada@example.org")
        t.send(MSG, "digest@example.org", "grace@example.org")
        t.close()
        assert [m.recipients for m in sink.messages] == [["ada@example.org"], ["grace@example.org"]]
        assert t.connects == 1

        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "wrong")
        with pytest.raises(TransportUnavailable, match="535"):
            smtp_from_settings(settings).open()
        untrusted = SmtpTransport(sink.host, sink.port, security="starttls")  # the system CAs do not know it
        with pytest.raises(TransportUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.open()


def test_implicit_tls(cert):
    with SmtpSink(ssl_context=server_context(cert)) as sink:
        t = SmtpTransport(sink.host, sink.port, security="tls",
                          context=ssl.create_default_context(cafile=cert[0]))
        t.send(MSG, "digest@example.org", "ada@example.org")
        t.close()
        assert sink.messages[0].data.replace(b"\r\n", b"\n").endswith(MSG.replace(b"\r\n", b"\n"))


def test_replies_map_to_outcomes_and_the_connection_survives():
    faults = Faults(temporary={"soon@example.org": 1}, reject={"gone@example.org"}, drop_at={4}, busy_at={6})
    with SmtpSink(faults=faults) as sink:
        t = SmtpTransport(sink.host, sink.port)
        with pytest.raises(TemporaryFailure) as temp:
            t.send(MSG, "digest@example.org", "soon@example.org")
        assert (temp.value.code, temp.value.status) == (450, "4.2.0")
        with pytest.raises(PermanentFailure) as perm:
            t.send(MSG, "digest@example.org", "gone@example.org")
        assert (perm.value.code, perm.value.status) == (550, "5.1.1")
        t.send(MSG, "digest@example.org", "soon@example.org")  # transaction 3
        t.send(MSG, "digest@example.org", "a@example.org")  # 4 breaks: reconnect, 5 goes through
        t.send(MSG, "digest@example.org", "b@example.org")  # 6 is "421 closing": reconnect, 7
        t.close()
        assert [m.recipients[0] for m in sink.messages] == ["soon@example.org", "a@example.org",
                                                            "b@example.org"]
        assert t.connects == 3


def test_unreachable_server_is_unavailable_not_a_recipient_failure():
    with SmtpSink() as sink:
        port = sink.port
    with pytest.raises(TransportUnavailable):
        SmtpTransport("127.0.0.1", port, timeout=2).send(MSG, "digest@example.org", "ada@example.org")


def test_a_send_keeps_pool_size_smtp_connections_and_one_outbox(tmp_path):
    smtp = from_dict({"mail": {"transport": "smtp", "smtp": {"pool_size": 3}}})
    assert connections(smtp) == 3 and isinstance(from_settings(smtp), SmtpTransport)
    outbox = from_dict({"mail": {"outbox_dir": str(tmp_path / "out")}})
    assert connections(outbox) == 1
    t = from_settings(outbox)
    t.open()
    t.send(MSG, "digest@example.org", "ada@example.org")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t1_example.org.eml",
                                                                    "t1_example.org.html"]


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def test_unlimited_never_waits():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock.now, sleep=clock.sleep)
    for _ in range(1000):
        limiter.acquire()
    assert clock.sleeps == [] and limiter.unlimited


def test_token_bucket_paces_after_a_one_second_burst():
    clock = FakeClock()
    limiter = RateLimiter(rate=10, clock=clock.now, sleep=clock.sleep)
    for _ in range(30):
        limiter.acquire()
    assert clock.t == pytest.approx(2.0)  # 10 at once, then one every 0.1 s


def test_sliding_window_caps_any_window():
    clock = FakeClock()
    limiter = RateLimiter(window_limit=3, window_seconds=60, clock=clock.now, sleep=clock.sleep)
    stamps = []
    for _ in range(7):
        limiter.acquire()
        stamps.append(clock.t)
        clock.t += 1  # one message a second when allowed
    assert stamps == [0, 1, 2, 60, 61, 62, 120]


BUSY = "421 4.3.2 Service shutting down, closing transmission channel"
ADA = "ada@example.org"


# One case per row of transport._OUTCOMES not covered above: the faults, the recipient, what the first
# send raises (None: it goes through), the transactions it took, and the connections opened once a
# second message has followed it (1: the connection survived; one more per reconnect). Transactions
# given as {pipelining: n} differ: pipelined, a group that cannot be encoded is not sent at all.
ROWS = {
    "421 on RCPT: reconnect, the retry goes through": (Faults(replies={("RCPT", 1): BUSY}), ADA, None, 2, 2),
    "421 on RCPT twice: TemporaryFailure": (
        Faults(replies={("RCPT", 1): BUSY, ("RCPT", 2): BUSY}), ADA, (TemporaryFailure, 421, "^421 4.3.2"), 2,
        3),
    "421 on MAIL twice: TemporaryFailure": (Faults(busy_at={1, 2}), ADA,
                                            (TemporaryFailure, 421, "^421 4.3.2"), 2, 3),
    "421 on DATA: reconnect, the retry goes through": (Faults(replies={("DATA", 1): BUSY}), ADA, None, 2, 2),
    "421 on DATA twice: TemporaryFailure": (
        Faults(replies={("DATA", 1): BUSY, ("DATA", 2): BUSY}), ADA, (TemporaryFailure, 421, "^421 4.3.2"), 2,
        3),
    "4xx on DATA: TemporaryFailure, connection kept": (
        Faults(replies={("DATA", 1): "451 4.3.0 try again later"}), ADA,
        (TemporaryFailure, 451, "^451 4.3.0"), 1, 1),
    "5xx on DATA: PermanentFailure, connection kept": (
        Faults(replies={("DATA", 1): "554 5.6.0 content refused"}), ADA,
        (PermanentFailure, 554, "^554 5.6.0"), 1, 1),
    "4xx to the sender: TemporaryFailure, connection kept": (
        Faults(replies={("MAIL", 1): "451 4.3.0 try again later"}), ADA,
        (TemporaryFailure, 451, "^451 4.3.0"), 1, 1),
    "5xx to the sender: TransportUnavailable": (
        Faults(replies={("MAIL", 1): "553 5.7.1 sender not allowed"}), ADA,
        (TransportUnavailable, None, "^sender digest@example.org refused: 553 5.7.1"), 1, 1),
    "non-ASCII address: PermanentFailure, the next message on a new connection": (
        Faults(), "jürgen@example.org", (PermanentFailure, None, "not an ASCII address"), {False: 1, True: 0},
        2),
    "550 on RCPT: PermanentFailure, connection kept": (
        Faults(reject={ADA}), ADA, (PermanentFailure, 550, "^550 5.1.1"), 1, 1),
    "450 on RCPT: TemporaryFailure, connection kept": (
        Faults(temporary={ADA: 1}), ADA, (TemporaryFailure, 450, "^450 4.2.0"), 1, 1),
    "connection lost twice: TemporaryFailure": (
        Faults(drop_at={1, 2}), ADA, (TemporaryFailure, None, "^connection lost"), 2, 3),
}


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one command at a time"])
@pytest.mark.parametrize(("faults", "recipient", "raises", "transactions", "connects"), ROWS.values(),
                         ids=ROWS)
def test_each_failure_maps_to_its_outcome(faults, recipient, raises, transactions, connects, pipelining):
    faults = copy.deepcopy(faults)  # the sink counts down its faults
    with SmtpSink(SinkHandler(faults=faults, pipelining=pipelining)) as sink:
        t = SmtpTransport(sink.host, sink.port, timeout=5)
        if raises is None:
            t.send(MSG, "digest@example.org", recipient)
        else:
            kind, code, match = raises
            with pytest.raises(kind, match=match) as err:
                t.send(MSG, "digest@example.org", recipient)
            assert getattr(err.value, "code", None) == code
        assert sink.handler.transactions == (transactions[pipelining] if isinstance(transactions, dict)
                                             else transactions)
        t.send(MSG, "digest@example.org", "next@example.org")
        t.close()
        assert t.connects == connects
        assert [m.recipients[0]
                for m in sink.messages] == [recipient] * (raises is None) + ["next@example.org"]


def test_timeout_row_drops_and_does_not_resend():
    from digest.mail.transport import _outcome

    drop, retry, error = _outcome(TimeoutError("timed out"), "end of data", "digest@example.org", ADA)
    assert (drop, retry, type(error), str(error)) == (True, False, TemporaryFailure,
                                                      "timed out at end of data: timed out")
    assert error.stage == "end of data" and error.verdict is None


def test_a_slow_data_reply_is_not_resent():
    """smtplib turns a read timeout into SMTPServerDisconnected; it must not be resent at once (the
    server may have taken the message): a temporary failure, retried later by the ledger."""
    with SmtpSink(faults=Faults(delay=1.0)) as sink:
        t = SmtpTransport(sink.host, sink.port, timeout=0.3)
        with pytest.raises(TemporaryFailure, match="^timed out"):
            t.send(MSG, "digest@example.org", ADA)
        assert sink.handler.transactions == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one command at a time"])
def test_lines_starting_with_a_dot_arrive_as_written(pipelining):
    """DATA doubles a leading dot (RFC 5321 4.5.2) and the server takes it off again: the stored
    message is the one sent, byte for byte, whether the commands were pipelined or not."""
    body = b".starts with a dot\r\n..two\r\nend."
    data = MSG.replace(b"\r\n\r\n", b"\r\n\r\n" + body + b"\r\n", 1)
    with SmtpSink(SinkHandler(pipelining=pipelining)) as sink:
        t = SmtpTransport(sink.host, sink.port, timeout=5)
        t.send(data, "digest@example.org", ADA)
        t.send(b".x: leading dot in the first line\r\n\r\nbody without a final line end",
               "digest@example.org", ADA)
        t.close()
        assert [m.data for m in sink.messages] == [data,
                                                   b".x: leading dot in the first line\r\n\r\nbody without a "
                                                   b"final line end\r\n"]
        assert t.connects == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one command at a time"])
def test_before_end_runs_before_the_dot_and_what_it_raises_leaves_nothing_delivered(pipelining):
    """`before_end` (what PostgreSQL sending waits for: the previous outcome's commit) runs once the
    message is out but for its ending dot: the server has taken nothing yet, and what arrives after it is
    the message byte for byte. If it raises, that error comes out, the connection is closed without the
    dot, and the server delivers nothing of it; the next message opens a new connection."""
    data = MSG.replace(b"\r\n\r\n", b"\r\n\r\n.leading dot\r\n", 1)
    bare = b"Subject: no final line end\r\n\r\nbody"
    with SmtpSink(SinkHandler(pipelining=pipelining)) as sink:
        t = SmtpTransport(sink.host, sink.port, timeout=5)
        seen: list[int] = []
        for message in (data, bare):
            t.send(message, "digest@example.org", ADA,
                   before_end=lambda: (time.sleep(0.2), seen.append(sink.handler.received)))
        assert seen == [0, 1] and [m.data for m in sink.messages] == [data, bare + b"\r\n"]

        def refuse() -> None:
            raise RuntimeError("the ledger is gone")

        with pytest.raises(RuntimeError, match="the ledger is gone"):
            t.send(data, "digest@example.org", ADA, before_end=refuse)
        time.sleep(0.3)
        assert sink.handler.received == 2
        t.send(data, "digest@example.org", ADA)
        t.close()
        assert sink.handler.received == 3 and t.connects == 2
