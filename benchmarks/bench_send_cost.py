"""What sending one message costs, apart from wall-clock time (which a loaded machine makes say little):
CPU seconds and database round trips per message, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/bench_send_cost.py [--subscribers 20000] [--workers 2] [--pool-size 2]
        [--pg | --only-pg] [--repeat 1] [--profile PREFIX]

Sets up a list as bench_daily.py does (`digest init`, `ingest`, `subscribers import`, then one `digest
run` into Postfix's smtp-sink, which plans), then, as often as `--repeat` says, hands every sent
delivery back to `planned` and sends them all again with `digest send --workers N` (planning finds every
edition already there). Per message it prints:
- the CPU (user+sys) of the `digest send` process tree (`/usr/bin/time`, which counts the children it
  waited for: the sending processes);
- on PostgreSQL, the CPU of the server backends serving that command (its connections carry their own
  application_name; their /proc times sampled every 50 ms while they live, the last sample kept);
- on PostgreSQL, round trips: every ReadyForQuery the server sends through a counting proxy on loopback
  (one per simple query and one per extended-protocol Sync), and the statements behind them by kind.
The planning pass of `digest send` is in all three: `--subscribers 0`-sized runs show it is small (it
finds every edition there already and writes nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_daily  # noqa: E402 - benchmarks/bench_daily.py, beside this file

APP = "digest_send_cost"


class CountingProxy:
    """A TCP proxy to PostgreSQL that counts ReadyForQuery messages (round trips) and the statements
    clients run (simple queries, and Binds of the statements their Parse messages named), by their
    first words."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.ready = 0
        self.statements: Counter[str] = Counter()  # executions, by the statement's first words
        self._names: dict[int, dict[bytes, str]] = {}  # per client connection: prepared statement -> words
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.ready, self.statements = 0, Counter()

    def _accept(self) -> None:
        while True:
            client, _ = self.sock.accept()
            server = socket.create_connection(self.target)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        buf, names = b"", self._names.setdefault(id(src if from_client else dst), {})
        started = not from_client  # the client's startup message has no type byte
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                buf += data
                while True:
                    if not started:
                        if len(buf) < 4:
                            break
                        n = int.from_bytes(buf[:4], "big")
                        if len(buf) < n:
                            break
                        buf, started = buf[n:], True
                        continue
                    if len(buf) < 5:
                        break
                    kind, n = buf[:1], int.from_bytes(buf[1:5], "big")
                    if len(buf) < 1 + n:
                        break
                    body, buf = buf[5 : 1 + n], buf[1 + n :]
                    self._note(kind, body, from_client, names)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _note(self, kind: bytes, body: bytes, from_client: bool, names: dict[bytes, str]) -> None:
        with self.lock:
            if not from_client and kind == b"Z":
                self.ready += 1
            elif from_client and kind == b"Q":
                sql = body.rstrip(b"\0")
                self.statements[_words(sql)] += 1
                if sql[:8].upper() == b"PREPARE ":  # an SQL PREPARE names what its Binds run
                    names[sql.split()[1].split(b"(")[0]] = _words(sql.split(b" AS ", 1)[-1])
            elif from_client and kind == b"P":
                name, sql = body.split(b"\0")[:2]
                names[name] = _words(sql)
            elif from_client and kind == b"B":
                self.statements[names.get(body.split(b"\0")[1], "?")] += 1


def _words(sql: bytes) -> str:
    return " ".join(sql.decode(errors="replace").split()[:4])[:60]


class BackendCpu:
    """CPU seconds of the PostgreSQL backends whose application_name is `APP`, sampled while they live."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine

        self.engine = create_engine(url)
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        with self.engine.connect() as c:
            while not self.stop.is_set():
                pids = [p for (p,) in c.exec_driver_sql(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APP,))]
                c.rollback()
                for pid in pids:
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    self.seen[pid] = (int(fields[11]) + int(fields[12])) / self.tick
                time.sleep(0.05)

    def total(self) -> float:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()
        return sum(self.seen.values())


def run(kind: str, n: int, workers: int, repeat: int, pool_size: int, profile: str | None = None) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-send-cost-"))
    listing = bench_daily.papers(1000)
    (work / "papers.jsonl").write_text("\n".join(json.dumps(p) for p in listing), encoding="utf-8")
    bench_daily.subscribers_csv(work / "subscribers.csv", n, listing)
    sink = bench_daily.Sink()
    url, drop = bench_daily.database_url(kind, work)
    proxy = None
    if kind == "postgresql":
        from sqlalchemy.engine import make_url

        u = make_url(bench_daily.PG)
        proxy = CountingProxy(u.host or "127.0.0.1", u.port or 5432)
        url = (url.replace(f"{u.host}:{u.port or 5432}", f"127.0.0.1:{proxy.port}")
               + f"&application_name={APP}&sslmode=disable&gssencmode=disable")
    (work / "secret").write_text("bench-secret-" + "x" * 32)
    (work / "config.toml").write_text(
        f'[database]\nurl = "{url}"\n[web]\nbase_url = "https://digest.example.org"\n'
        f'secret_file = "{work / "secret"}"\n[digest]\nranker = "lexical"\n'
        f'[mail]\ntransport = "smtp"\nfrom_address = "Trending Papers <digest@example.org>"\n'
        f'[mail.smtp]\nhost = "127.0.0.1"\nport = {sink.port}\npool_size = {pool_size}\n'
        f'[sources.bench]\ntype = "file"\npaths = ["{work / "papers.jsonl"}"]\n', encoding="utf-8")
    env = {**os.environ, "DIGEST_CONFIG": str(work / "config.toml"), "PYTHONPATH": str(bench_daily.ROOT)}
    digest = bench_daily.DIGEST
    try:
        for cmd in (["init"], ["ingest"], ["subscribers", "import", str(work / "subscribers.csv")],
                    ["run", "--workers", str(workers)]):
            bench_daily.timed([*digest, *cmd], work, env)
        from sqlalchemy import create_engine

        db = create_engine(url.replace(f"127.0.0.1:{proxy.port}", "127.0.0.1:5432") if proxy else url)
        for i in range(repeat):
            with db.begin() as c:
                sent = c.exec_driver_sql(
                    "UPDATE deliveries SET status = 'planned', worker_id = NULL, lease_expires_at = NULL, "
                    "attempts = 0, sent_at = NULL, subject = NULL, last_error = NULL, next_attempt_at = NULL "
                    "WHERE status = 'sent'").rowcount
            if proxy:
                proxy.reset()
            backends = BackendCpu(bench_daily.PG) if proxy else None
            cmd = [*digest, "send", "--workers", str(workers)]
            if profile and i == repeat - 1:  # the last one sampled by py-spy (its CPU counted too)
                cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "-s", "-r", "200", "-f", "raw",
                       "-o", f"{profile}-{kind}.txt", "--", *cmd]
            secs, _, out = bench_daily.timed(cmd, work, env)
            cpu = bench_daily.timed.cpu
            pg_cpu = backends.total() if backends else 0.0
            line = (f"{kind}, {n:,} subscribers, {workers} workers: {sent:,} messages in {secs:.1f} s; "
                    f"CPU per message: digest {cpu / sent * 1000:.2f} ms")
            if proxy:
                line += (f" + PostgreSQL backends {pg_cpu / sent * 1000:.2f} ms = "
                         f"{(cpu + pg_cpu) / sent * 1000:.2f} ms; round trips per message "
                         f"{proxy.ready / sent:.2f}")
            print(line, f"(load {os.getloadavg()[0]:.1f})", flush=True)
            if proxy:
                for what, count in proxy.statements.most_common(12):
                    print(f"    {count / sent:7.3f}/msg  {what}")
        db.dispose()
    finally:
        sink.close()
        drop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--pool-size", type=int, default=2, help="SMTP connections per sending process")
    ap.add_argument("--pg", action="store_true",
                    help="PostgreSQL too (DIGEST_TEST_PG, else 127.0.0.1:5432)")
    ap.add_argument("--only-pg", action="store_true")
    ap.add_argument("--profile", help="py-spy the last repeat into PROFILE-<database>.txt (raw)")
    args = ap.parse_args()
    if not shutil.which("smtp-sink"):
        print("bench_send_cost: needs Postfix's smtp-sink (apt-get install postfix); skipped")
        return 0
    kinds = ["postgresql"] if args.only_pg else ["sqlite", *(["postgresql"] if args.pg else [])]
    for kind in kinds:
        run(kind, args.subscribers, args.workers, args.repeat, args.pool_size, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
