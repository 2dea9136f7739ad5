"""The daily run as an admin runs it, through the CLI, at list size: import, then `digest run`.

    .venv/bin/python benchmarks/bench_daily.py [--subscribers N ...] [--papers 1000] [--pg]
        [--papers-runs 20000 200000 [--ingest-only] [--naive-upto N]]
        [--workers 2] [--pool-size 2] [--ranker lexical|hybrid] [--scaling 1 2 4 [--scaling-subscribers 2000]]

Data: real papers (titles and abstracts of the ICLR 2021 set in ../shared/eval) and subscribers with
1-5 real topic phrases each (the papers' own author keywords, drawn by frequency). Each run: `digest
init`, `digest ingest`, `digest subscribers import` of the CSV, then the whole `digest run` (ingest
again, plan, render, send) with `--workers` processes of `--pool-size` SMTP connections each. Mail
goes over SMTP to Postfix's `smtp-sink` on
loopback; the ceiling row is Postfix's `smtp-source` sending a message of the same size into the
same sink, one connection, in the same run. Every step is a `digest` subprocess; its peak RSS comes
from `/usr/bin/time -f %M` (the largest process: with workers, each sending process is counted alone).

`--scaling 1 2 4`: the same run on PostgreSQL with that many sending processes against a relay that
takes 20 ms per message (the project's aiosmtpd sink, which also checks every delivery arrived once).
`--papers-runs 20000 200000`: many papers, one subscriber: `digest ingest` of one JSON Lines file of
that many synthetic papers (benchmarks/synthetic.py: real sentences' words, real acronyms) beside its
ceiling (parse + bare executemany INSERT) and the naive way (each paper analysed alone, one process;
up to `--naive-upto` papers), from benchmarks/ingest_ways.py, then (unless `--ingest-only`)
`digest send --dry-run`; `--papers` past the eval set's 2,967 papers makes the subscriber runs use
synthetic papers too (10,000 papers x 100,000 subscribers).
Prints one table: step, seconds, rate (msg/s, or papers/s), ratio to the ceiling, peak RSS.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402 - benchmarks/synthetic.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval" / "iclr2021_paperlist.tsv"
PG = os.environ.get("DIGEST_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DIGEST = [sys.executable, "-m", "digest.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def papers(n: int) -> list[dict]:
    """n papers as `file` source JSON Lines entries (title, abstract, keywords kept for topics): the
    real ones of the eval set up to its size, synthetic ones made of their text beyond it
    (benchmarks/synthetic.py)."""
    if n > 2500:
        return list(synthetic.papers(n))
    rows = []
    if EVAL.exists():
        with EVAL.open(encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f, delimiter="\t") if r.get("title") and r.get("abstract")]
    if not rows:
        sys.exit(f"needs {EVAL} (the shared eval set) for real papers")
    rows = rows[:n]
    return [{"id": r["paper_id"], "title": r["title"], "abstract": r["abstract"], "keywords": r["keywords"],
             "upvotes": i % 37, "published_at": "2026-11-30T08:00:00Z"} for i, r in enumerate(rows)]


def subscribers_csv(path: Path, n: int, listing: list[dict], seed: int = 1) -> None:
    """n subscribers, 1-5 topic phrases each drawn by how often authors used them."""
    counts = Counter(k.strip().lower() for p in listing for k in p["keywords"].split(",") if k.strip())
    phrases, weights = zip(*[(k, c) for k, c in counts.items() if 3 <= len(k) <= 60], strict=True)
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "topics", "timezone", "hour"])
        for i in range(n):
            topics = sorted(set(rng.choices(phrases, weights, k=rng.randint(1, 5))))
            w.writerow([f"reader{i:06d}@example.org", f"Reader {i}", "; ".join(topics), "UTC", 8])


class Sink:
    """Postfix's smtp-sink on loopback: accepts and discards, very fast (the C ceiling's peer)."""

    def __init__(self, extra: list[str] = ()):
        self.port = free_port()
        args = ["smtp-sink", "-c", "-u", os.environ.get("USER", "root"), *extra]
        self.proc = subprocess.Popen([*args, f"127.0.0.1:{self.port}", "1000"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, int, str]:
    """Run a command; (seconds, peak RSS in MiB, stdout). Output goes to a file, never a full pipe."""
    rss_file = cwd / f"rss-{uuid.uuid4().hex[:6]}"
    out_file = cwd / f"out-{uuid.uuid4().hex[:6]}"
    t0 = time.perf_counter()
    with out_file.open("w") as out:
        proc = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", str(rss_file), *cmd], cwd=cwd,
                              env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    text = out_file.read_text()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{text[-2000:]}")
    user, system, rss = rss_file.read_text().split()[-3:]
    timed.cpu = float(user) + float(system)  # CPU seconds of the last command (a loaded machine's wall
    return seconds, int(rss) // 1024, text  # time says little; its CPU time says more)


def ceiling(sink: Sink, eml: Path, n: int) -> float:
    """msg/s of smtp-source -d sending `eml` n times over one connection into the sink."""
    t0 = time.perf_counter()
    subprocess.run(["smtp-source", "-d", "-s", "1", "-m", str(n), "-F", str(eml), "-f", "digest@example.org",
                    "-t", "reader@example.org", f"127.0.0.1:{sink.port}"], check=True,
                   stdout=subprocess.DEVNULL)
    return n / (time.perf_counter() - t0)


def database_url(kind: str, work: Path, fresh: bool = False) -> tuple[str, callable]:
    """The database of a run (`fresh`: the SQLite file of an earlier one removed first)."""
    if kind == "sqlite":
        if fresh:
            for f in work.glob("digest.db*"):
                f.unlink()
        return f"sqlite:///{work / 'digest.db'}", lambda: None
    from sqlalchemy import create_engine, text

    schema = "bench_" + uuid.uuid4().hex[:8]
    eng = create_engine(PG)
    with eng.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with eng.begin() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        eng.dispose()

    return f"{PG}?options=-csearch_path%3D{schema}", drop


class SlowRelay:
    """A relay `delay` seconds per message away: Postfix's smtp-sink (keeping each message in a file)
    behind a proxy that holds each of its replies for a quarter of `delay` (a message takes four:
    MAIL, RCPT, DATA, end of data). Checks that every delivery arrived exactly once."""

    def __init__(self, delay: float):
        import asyncio
        import threading

        self.dump = Path(tempfile.mkdtemp(prefix="bench-relay-"))
        self.inner = Sink(["-d", str(self.dump / "m")])
        self.port, self.hold = free_port(), delay / 4
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def pump(reader, writer, hold: float) -> None:
            try:
                while data := await reader.read(1 << 16):
                    if hold:
                        await asyncio.sleep(hold)
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        async def client(reader, writer) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.inner.port)
            await asyncio.gather(pump(reader, up_writer, 0.0), pump(up_reader, writer, self.hold))

        async def serve() -> None:
            self.server = await asyncio.start_server(client, "127.0.0.1", self.port)
            ready.set()
            await self.server.serve_forever()

        threading.Thread(target=self.loop.run_until_complete, args=(serve(),), daemon=True).start()
        ready.wait(10)

    def count(self) -> tuple[int, bool]:
        """(messages received, each Message-ID once)."""
        ids = Counter()
        for f in self.dump.iterdir():
            head = f.read_bytes()[:4096]
            ids[next((ln for ln in head.split(b"\n") if ln.lower().startswith(b"message-id:")), b"")] += 1
        return sum(ids.values()), bool(ids) and max(ids.values()) == 1

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.inner.close()
        shutil.rmtree(self.dump, ignore_errors=True)


def run(n: int, n_papers: int, kind: str, ranker: str, workers: int = 1, delay: float = 0.0,
        pool_size: int = 1) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="bench-daily-"))
    listing = papers(n_papers)
    (work / "papers.jsonl").write_text("\n".join(json.dumps(p) for p in listing), encoding="utf-8")
    subscribers_csv(work / "subscribers.csv", n, listing)
    sink = SlowRelay(delay) if delay else Sink()
    url, drop = database_url(kind, work)
    cfg = work / "config.toml"
    (work / "secret").write_text("bench-secret-" + "x" * 32)
    cfg.write_text(f'[database]\nurl = "{url}"\n[web]\nbase_url = "https://digest.example.org"\n'
                   f'secret_file = "{work / "secret"}"\n[digest]\nranker = "{ranker}"\n'
                   f'[mail]\ntransport = "smtp"\nfrom_address = "Trending Papers <digest@example.org>"\n'
                   f'[mail.smtp]\nhost = "127.0.0.1"\nport = {sink.port}\npool_size = {pool_size}\n'
                   f'[sources.bench]\ntype = "file"\npaths = ["{work / "papers.jsonl"}"]\n', encoding="utf-8")
    env = {**os.environ, "DIGEST_CONFIG": str(cfg), "PYTHONPATH": str(ROOT)}
    rows = []
    label = f"{n:,} subscribers, {kind}, {ranker}, {workers} worker{'s' if workers > 1 else ''}"
    if pool_size > 1:
        label += f" x {pool_size} connections"
    if delay:
        label += f", relay {delay * 1000:.0f} ms/msg"
    try:
        for step, cmd in (("digest init", ["init"]), ("digest ingest", ["ingest"]),
                          ("digest subscribers import",
                           ["subscribers", "import", str(work / "subscribers.csv")])):
            secs, rss, _ = timed([*DIGEST, *cmd], work, env)
            rows.append({"run": label, "step": step, "seconds": secs, "rss": rss})
        eml = work / "one.eml"
        eml.write_bytes(subprocess.run([*DIGEST, "preview", "--subscriber", "reader000000@example.org",
                                        "--format", "eml"], cwd=work, env=env, capture_output=True,
                                       check=True).stdout)
        secs, rss, out = timed([*DIGEST, "run", "--json", "--workers", str(workers)], work, env)
        result = json.loads(out[out.index("{"):])
        sent, took = result["sent"], result["seconds"]
        top = {} if delay else {"ceiling": ceiling(sink, eml, min(max(sent, 1000), 20000))}
        what = f"{sent:,} sent"
        if delay:
            got, once = sink.count()
            what += (", every delivery once" if once and got == sent
                     else f", {got:,} received: NOT EXACTLY ONCE")
        rows.append({"run": label, "step": f"digest run: whole command ({what})", "seconds": secs,
                     "rate": sent / secs, "rss": rss, **top})
        rows.append({"run": label, "step": f"  of which planning {result['planned']:,} editions",
                     "seconds": took["plan"]})
        rows.append({"run": label, "step": "  of which rendering and sending",
                     "seconds": took.get("send", 0.0),
                     "rate": sent / max(took.get("send", 0.0), 1e-9), **top})
        if top:
            rows.append({"run": label,
                         "step": f"ceiling: smtp-source -d, {eml.stat().st_size // 1024} KB messages",
                         "rate": top["ceiling"]})
    finally:
        sink.close()
        drop()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def papers_run(n_papers: int, kind: str = "sqlite", *, plan: bool = True, naive: bool = True) -> list[dict]:
    """Many papers, one subscriber: `digest ingest` of one JSON Lines file of n synthetic papers
    (papers/s, peak RSS) beside, into fresh databases, the ceiling (parse and bare insert) and the
    naive way (each paper analysed alone, one process) of benchmarks/ingest_ways.py; then (`plan`)
    `digest send --dry-run` (planning one subscriber's first edition, a 7-day window, against all)."""
    work = Path(tempfile.mkdtemp(prefix="bench-papers-"))
    with (work / "papers.jsonl").open("w", encoding="utf-8") as f:
        for p in synthetic.papers(n_papers):
            f.write(json.dumps(p) + "\n")
    size = (work / "papers.jsonl").stat().st_size
    url, drop = database_url(kind, work)
    (work / "secret").write_text("bench-secret-" + "x" * 32)
    (work / "config.toml").write_text(
        f'[database]\nurl = "{url}"\n[web]\nbase_url = "https://digest.example.org"\n'
        f'secret_file = "{work / "secret"}"\n[digest]\nranker = "lexical"\n'
        f'[sources.bench]\ntype = "file"\npaths = ["{work / "papers.jsonl"}"]\n', encoding="utf-8")
    topics = "graph neural networks; diffusion models"
    (work / "one.csv").write_text(f"email,topics\nreader@example.org,{topics}\n", encoding="utf-8")
    env = {**os.environ, "DIGEST_CONFIG": str(work / "config.toml"), "PYTHONPATH": str(ROOT)}
    label = f"{n_papers:,} papers ({size / 1e6:.0f} MB JSON Lines), 1 subscriber, {kind}"
    rows = []
    ways = [sys.executable, str(Path(__file__).resolve().parent / "ingest_ways.py")]
    try:
        timed([*DIGEST, "init"], work, env)
        secs, rss, out = timed([*ways, "ceiling"], work, env)
        top = int(out.split()[-1]) / secs
        rows.append({"run": label, "step": f"ceiling: json.loads + bare executemany INSERT (CPU "
                     f"{timed.cpu:.0f} s)", "seconds": secs, "rate": top, "rss": rss, "unit": "papers/s"})
        drop()
        before, (url, drop) = url, database_url(kind, work, fresh=True)
        (work / "config.toml").write_text((work / "config.toml").read_text().replace(before, url))
        timed([*DIGEST, "init"], work, env)
        secs, rss, out = timed([*DIGEST, "ingest", "--json"], work, env)
        report = json.loads(out[out.index("{"):])
        new = sum(s["new"] for s in report["sources"])
        cpu = timed.cpu
        rows.append({"run": label, "step": f"digest ingest ({new:,} new, terms analysed; CPU {cpu:.0f} s, "
                     f"{new / cpu:,.0f} papers per CPU second)", "seconds": secs,
                     "rate": new / secs, "rss": rss, "unit": "papers/s", "ceiling": top})
        if naive and kind == "sqlite":
            keep = work / "digest.db"
            env_naive = {**env, "DIGEST_CONFIG": str(work / "naive.toml")}
            (work / "naive.toml").write_text((work / "config.toml").read_text().replace(str(keep),
                                             str(work / "naive.db")), encoding="utf-8")
            timed([*DIGEST, "init"], work, env_naive)
            secs, rss, out = timed([*ways, "naive"], work, env_naive)
            rows.append({"run": label, "step": f"naive: each paper analysed alone, one process (CPU "
                         f"{timed.cpu:.0f} s)", "seconds": secs, "rate": int(out.split()[-1]) / secs,
                         "rss": rss, "unit": "papers/s", "ceiling": top})
            for f in work.glob("naive.db*"):
                f.unlink()
        if not plan:
            return rows
        timed([*DIGEST, "subscribers", "import", str(work / "one.csv")], work, env)
        secs, rss, out = timed([*DIGEST, "send", "--dry-run"], work, env)
        step = f"digest send --dry-run (plan 1 subscriber; CPU {timed.cpu:.0f} s)"
        rows.append({"run": label, "step": step, "seconds": secs, "rss": rss})
    finally:
        drop()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| run | step | seconds | msg/s | of ceiling | peak RSS |", "|---|---|---|---|---|---|"]
    lines[0] = lines[0].replace("msg/s", "rate")
    for r in rows:
        secs = f"{r['seconds']:.1f}" if "seconds" in r else ""
        rate = f"{r['rate']:,.0f}" + (f" {r['unit']}" if "unit" in r else "") if "rate" in r else ""
        share = f"{r['rate'] / r['ceiling']:.1%}" if "ceiling" in r else ""
        rss = f"{r['rss']} MiB" if "rss" in r else ""
        lines.append(f"| {r['run']} | {r['step']} | {secs} | {rate} | {share} | {rss} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, nargs="*", default=[1000])
    ap.add_argument("--papers", type=int, default=1000,
                    help="candidate papers of the subscriber runs (past the eval set's 2,967: synthetic)")
    ap.add_argument("--papers-runs", type=int, nargs="*", default=[],
                    help="paper counts for the many-papers rows (ingest, then planning one subscriber)")
    ap.add_argument("--ingest-only", action="store_true",
                    help="many-papers rows: the ingest rows only (no planning run)")
    ap.add_argument("--naive-upto", type=int, default=200_000,
                    help="many-papers rows: the naive ingest only for runs of at most this many papers")
    ap.add_argument("--pg", action="store_true",
                    help="also on PostgreSQL (DIGEST_TEST_PG or the local test database)")
    ap.add_argument("--ranker", default="lexical", choices=["lexical", "hybrid"])
    ap.add_argument("--workers", type=int, default=2,
                    help="sending processes of each run (default 2: both cores)")
    ap.add_argument("--pool-size", type=int, default=2,
                    help="SMTP connections per sending process (mail.smtp.pool_size; default 2: one sends "
                         "while "
                         "the other's outcome is recorded)")
    ap.add_argument("--scaling", type=int, nargs="*", default=[],
                    help="worker counts for the PostgreSQL scaling rows")
    ap.add_argument("--scaling-subscribers", type=int, default=2000)
    args = ap.parse_args()
    if not shutil.which("smtp-sink") or not shutil.which("smtp-source"):
        print("bench_daily: needs Postfix's smtp-sink and smtp-source (apt-get install postfix); skipped")
        return 0
    rows = []
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for n in args.papers_runs:
        rows += papers_run(n, plan=not args.ingest_only, naive=n <= args.naive_upto)
        print(table(rows[-4:]), flush=True)
    for n in args.subscribers:
        for kind in ["sqlite", *(["postgresql"] if args.pg else [])]:
            rows += run(n, args.papers, kind, args.ranker, args.workers, pool_size=args.pool_size)
            print(table(rows[-7:]), flush=True)
    for w in args.scaling:
        rows += run(args.scaling_subscribers, args.papers, "postgresql", args.ranker, w, delay=0.02)
        print(table(rows[-5:]), flush=True)
    print("\n" + table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
