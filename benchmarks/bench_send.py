"""Sending N rendered digests to a local SMTP sink: connection reuse against connect-per-message, the
full ledger pipeline, and the sink's own ceiling.

    .venv/bin/python benchmarks/bench_send.py [--n N] [--papers K]

The sink (aiosmtpd, counting only) runs in its own process so it does not share the GIL with the
sender. Rows:
- ceiling, smtp-source: Postfix's C load generator, one connection, the same digest file (if installed);
- ceiling, smtplib loop: one connection, one pre-built digest sent N times, nothing else;
- SmtpTransport, reused: N distinct pre-built digests over one connection (what `send` does);
- SmtpTransport, connect per message: the naive way;
- send() pool=P: the whole thing from the ledger: claim, render, message bytes, SMTP, record outcome;
- send() against a sink that takes --latency seconds per message: what a pool of connections is for.
Every row checks that the sink received exactly N messages.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import update  # noqa: E402

from digest.config import from_dict  # noqa: E402
from digest.delivery.channels import Channels  # noqa: E402
from digest.delivery.ledger import claim, release  # noqa: E402
from digest.delivery.loop import setup_for  # noqa: E402
from digest.delivery.outgoing import render_batch  # noqa: E402
from digest.delivery.sender import send  # noqa: E402
from digest.mail.transport import SmtpTransport  # noqa: E402
from digest.records import utcnow  # noqa: E402
from digest.render.compose import Entries  # noqa: E402
from digest.sources.ingest import ingest  # noqa: E402
from digest.store.db import Database  # noqa: E402
from digest.store.models import Delivery, Subscriber, Topic  # noqa: E402
from digest.usecases import planning  # noqa: E402

TOPICS = ["large language models", "diffusion models", "graph neural networks", "reinforcement learning",
          "video generation"]
SENDER = "digest@example.org"


def _serve(ready, count, stop, delay: float) -> None:
    import asyncio

    from digest.mail.sink import SinkHandler, SmtpSink

    class Counting(SinkHandler):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            if delay:
                await asyncio.sleep(delay)
            with count.get_lock():
                count.value += 1
            return "250 OK"

    with SmtpSink(Counting(keep=False)) as sink:
        ready.put(sink.port)
        stop.wait()


class Sink:
    """An aiosmtpd sink in a child process; `received` counts accepted messages. `delay`: seconds the
    server takes to accept each message (a remote relay's latency)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def __enter__(self) -> Sink:
        ctx = mp.get_context("fork")
        self.count, self.stop, ready = ctx.Value("i", 0), ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(target=_serve, args=(ready, self.count, self.stop, self.delay), daemon=True)
        self.proc.start()
        self.host, self.port = "127.0.0.1", ready.get(timeout=30)
        return self

    @property
    def received(self) -> int:
        return self.count.value

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.proc.join(10)


def timed(sink: Sink, n: int, fn: Callable[[], None], repeat: int,
          before_each: Callable[[], None] = lambda: None,
          ) -> float:
    """Best wall time of `repeat` runs of `fn`, each checked: the sink got exactly n messages."""
    best = float("inf")
    for _ in range(repeat):
        before_each()
        start = sink.received
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        deadline = time.monotonic() + 10
        while sink.received - start < n and time.monotonic() < deadline:
            time.sleep(0.01)
        if sink.received - start != n:
            raise SystemExit(f"sink received {sink.received - start} messages, expected {n}")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="digests per row (default 300)")
    ap.add_argument("--papers", type=int, default=10, help="papers per digest (default 10)")
    ap.add_argument("--pool", type=int, default=4, help="connections for the pooled send() row (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row, best time kept (default 3)")
    ap.add_argument("--latency", type=float, default=0.02,
                    help="seconds per message of the slow sink for the pool rows (default 0.02; 0: skip)")
    args = ap.parse_args()
    n, repeat = args.n, args.repeat
    tmp = Path(tempfile.mkdtemp(prefix="bench-send-"))
    rows: list[tuple[str, float]] = []
    (tmp / "secret").write_text("bench-secret-" + "x" * 32)
    try:
        with Sink() as sink:
            settings = from_dict({
                "database": {"url": f"sqlite:///{tmp / 'digest.store.db'}"},
                "web": {"base_url": "https://digest.example.org", "secret_file": str(tmp / "secret")},
                "digest": {"max_items": args.papers},
                "mail": {"transport": "smtp", "from_address": f"Trending Papers <{SENDER}>",
                         "unsubscribe_mailto": "unsubscribe@example.org",
                         "smtp": {"host": sink.host, "port": sink.port}},
            })
            db = Database(settings.database.url)
            db.init()
            print(f"setting up: {n} subscribers, bundled sample listings, planning ...", file=sys.stderr)
            ingest(db, settings)
            with db.session() as s:
                s.add_all(Subscriber(email=f"user{i:05d}@example.org", name=f"User {i}", status="active",
                                     topics=[Topic(phrase=TOPICS[i % len(TOPICS)])]) for i in range(n))
            planned = planning.plan(db, settings).planned
            if planned != n:
                raise SystemExit(f"planned {planned} of {n}")
            ids = claim(db, "bench", utcnow(), n)
            outgoing = render_batch(db, Channels(setup_for(settings)), ids, utcnow(), Entries()).items
            release(db, "bench", ids)
            messages = [(o.data, o.recipient) for o in outgoing]
            size = sum(len(d) for d, _ in messages) // len(messages)
            one = messages[0][0]
            with smtplib.SMTP(sink.host, sink.port) as warm:  # the sink's first connections are slower
                for data, rcpt in messages[:20]:
                    warm.sendmail(SENDER, [rcpt], data)
            while sink.received < min(20, n):
                time.sleep(0.01)

            if shutil.which("smtp-source"):
                eml = tmp / "digest.eml"
                eml.write_bytes(one.replace(b"\r\n", b"\n"))
                cmd = ["smtp-source", "-d", "-s", "1", "-m", str(n), "-F", str(eml), "-f", SENDER,
                       "-t", "user@example.org", f"{sink.host}:{sink.port}"]
                rows.append(("ceiling: smtp-source (Postfix), 1 connection",
                             timed(sink, n, lambda: subprocess.run(cmd, check=True, capture_output=True),
                                   repeat)))

            def smtplib_loop() -> None:
                with smtplib.SMTP(sink.host, sink.port) as conn:
                    for _ in range(n):
                        conn.sendmail(SENDER, ["user@example.org"], one)

            rows.append(("ceiling: smtplib loop, 1 connection, 1 message",
                         timed(sink, n, smtplib_loop, repeat)))

            def reused() -> None:
                t = SmtpTransport(sink.host, sink.port)
                for data, rcpt in messages:
                    t.send(data, SENDER, rcpt)
                t.close()

            def per_message() -> None:
                for data, rcpt in messages:
                    t = SmtpTransport(sink.host, sink.port)
                    t.send(data, SENDER, rcpt)
                    t.close()

            rows.append(("SmtpTransport, connection reused", timed(sink, n, reused, repeat)))
            rows.append(("SmtpTransport, connect per message (naive)", timed(sink, n, per_message, repeat)))

            def replan() -> None:
                with db.session() as s:
                    s.execute(update(Delivery).values(status="planned", attempts=0, sent_at=None))

            for pool in (1, args.pool):
                def run(pool: int = pool) -> None:
                    send(db, settings, transport=[SmtpTransport(sink.host, sink.port) for _ in range(pool)])

                rows.append((f"send() from the ledger, pool={pool} (render + record)",
                             timed(sink, n, run, repeat, replan)))

            if args.latency:  # what a pool is for: a server that takes its time over each message
                with Sink(args.latency) as slow:
                    for pool in (1, args.pool):
                        def run_slow(pool: int = pool) -> None:
                            send(db, settings,
                                 transport=[SmtpTransport(slow.host, slow.port) for _ in range(pool)])

                        rows.append((f"send(), pool={pool}, sink taking {args.latency * 1000:.0f} ms/message",
                                     timed(slow, n, run_slow, 1, replan)))
            db.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ceiling = min(seconds for name, seconds in rows if name.startswith("ceiling"))
    print(f"\n{n} digests of ~{size // 1024} KB ({args.papers} papers), aiosmtpd sink in its own process, "
          f"best of {repeat} runs (slow-sink rows: one run)\n")
    print(f"| {'mode':<52} | {'seconds':>8} | {'msg/s':>8} | {'vs ceiling':>10} |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
    for name, seconds in rows:
        print(f"| {name:<52} | {seconds:8.2f} | {n / seconds:8.1f} | {ceiling / seconds:9.0%} |")


if __name__ == "__main__":
    main()
