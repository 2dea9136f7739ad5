"""`digest scheduler` on real peers: jobs in-process, then as subprocesses with a local HTTP server
(recorded Hugging Face listings), a real SMTP server, SIGTERM, and two schedulers on one database."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import CliRunner
from httpreplay import ReplayServer, Reply
from sqlalchemy import func, select, update
from test_schedule_plan import TOPIC

from digest.cli import main
from digest.config import ConfigError
from digest.delivery import ledger
from digest.mail.sink import Faults, SmtpSink
from digest.records import DAY_NAMES, Edition
from digest.scheduler import Runner, triggers
from digest.store.db import Database
from digest.store.models import Delivery, JobRun, JobState, Paper, Subscriber
from digest.subscriptions import subscribers
from digest.usecases.planning import due_at
from digest.usecases.reads import StoreReads
from tests.factories import add_tagged

HF_FIXTURE = Path(__file__).parent / "fixtures" / "hf_daily_papers_2024-10-25.json"
NOON = datetime(2024, 6, 5, 12, tzinfo=UTC)  # a Wednesday


SLOW = Faults(delay=0.4)  # an SMTP server that takes its time over each message: a stop lands mid-batch


def smtp_settings(settings_for, db_url: str, sink: SmtpSink, **extra):
    return settings_for(db_url, sources={},
                        mail={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port}},
                        **extra)


def wait_for(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def statuses(db) -> Counter:
    with db.session() as s:
        return Counter(dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()))


# ------------------------------------------------------------------------------------------ in-process


def test_bad_cron_is_refused_with_its_key(settings_for, tmp_path):
    settings = settings_for(f"sqlite:///{tmp_path / 'd.db'}",
                            sources={"hf": {"type": "hf_daily", "schedule": "61 * * * *"}})
    with pytest.raises(ConfigError,
                       match=r"sources\.hf\.schedule: not a valid cron schedule '61 \* \* \* \*'"):
        triggers(settings)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n'
                   '[scheduler]\nhousekeeping = "daily"\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "scheduler"])
    assert result.exit_code == 1
    assert "scheduler.housekeeping: not a valid cron schedule 'daily'" in result.output


def test_tick_plans_who_is_due_sends_and_records(db, settings_for, tmp_path):
    with SmtpSink() as sink, time_machine.travel(NOON):
        settings = smtp_settings(settings_for, db.url, sink)
        add_tagged(db, 4, NOON - timedelta(hours=1), "wednesday")
        subscribers.add(db, "ada@example.org", topics=[TOPIC], hour=8)  # UTC: due
        subscribers.add(db, "bob@example.org", topics=[TOPIC], hour=20)  # UTC: later today
        subscribers.add(db, "cy@example.org", topics=[TOPIC], hour=9, timezone="Asia/Tokyo",
                        frequency="weekdays")
        runner = Runner(settings, db)
        ok, text = runner.run("tick")
        assert ok, text
        assert text.startswith("planned 2, already 0, not due 1, nothing new 0, suppressed 0; sent 2, "
                               "retried 0")
        assert sorted(m.recipients[0] for m in sink.messages) == ["ada@example.org", "cy@example.org"]
        assert runner.run("tick")[1].startswith("planned 0, already 2, not due 1")
    with db.session() as s:
        state = s.get(JobState, "tick")
        assert (state.last_ok and state.last_summary.startswith("planned 0, already 2")
                and state.next_run_at is None)
        assert s.scalar(select(func.count()).select_from(JobRun).where(JobRun.job_id == "tick")) == 2

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{db.url}"\n[sources]\n[web]\nsecret_file = "{tmp_path / "secret"}"\n')
    out = CliRunner().invoke(main, ["--config", str(cfg), "status"]).output
    assert "job tick: next (no scheduler running); last ok 2024-06-05 12:" in out
    assert "job housekeeping: next (no scheduler running); never run" in out
    data = json.loads(CliRunner().invoke(main, ["--config", str(cfg), "status", "--json"]).output)
    assert [j["job"] for j in data["jobs"]] == ["tick", "housekeeping"]
    assert data["jobs"][0]["last_ok"] is True


def test_stop_finishes_the_message_in_flight_and_hands_back_the_rest(db, settings_for):
    with SmtpSink(faults=SLOW) as sink:
        settings = smtp_settings(settings_for, db.url, sink)
        add_tagged(db, 4, datetime.now(UTC) - timedelta(minutes=5), "today")
        emails = [f"reader{i}@example.org" for i in range(6)]
        zone = quiet_zones(1)[0]
        for e in emails:  # the slot of the current period (today 00:00) has passed: all due
            subscribers.add(db, e, topics=[TOPIC], hour=0, timezone=zone)
        runner = Runner(settings, db)
        result: list = []
        worker = threading.Thread(target=lambda: result.append(runner.run("tick")))
        worker.start()
        wait_for(lambda: len(sink.messages) >= 1, 60, "the first message")
        runner.stop.set()
        worker.join(20)
        ok, text = result[0]
        assert ok and "stopped, the rest handed back" in text, text
        got = statuses(db)
        assert got["sent"] == len(sink.messages) < 6  # what the server took is recorded as sent
        assert got["planned"] == 6 - got["sent"] and got["sending"] == 0
        with db.session() as s:
            held = select(func.count()).select_from(Delivery).where(Delivery.worker_id.is_not(None))
            assert s.scalar(held) == 0
        runner.stop.clear()
        assert runner.run("tick")[0]
        assert sorted(m.recipients[0] for m in sink.messages) == emails  # the rest, and no one twice


def test_stop_ends_an_ingest_job_after_the_batch_it_is_on(db, settings_for, tmp_path):
    """SIGTERM during a scheduled ingest of a large file: the job stores the batch it is on and ends
    (it does not read the file to its end first); the next run reads the rest, each paper once."""
    from tests.test_ingest_signals import WORDS

    n, rng = 8_000, random.Random(3)
    listing = tmp_path / "papers.jsonl"
    with listing.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"2411.{i:05d}", "title": f"{' '.join(rng.choices(WORDS, k=6))} {i}",
                                "abstract": " ".join(rng.choices(WORDS, k=120)) + ".",
                                "published_at": "2026-11-30T08:00:00Z"}) + "\n")
    settings = settings_for(db.url, sources={"bulk": {"type": "file", "paths": [str(listing)]}})
    runner = Runner(settings, db)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(runner.run("ingest:bulk")))

    def stored() -> int:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(Paper))

    worker.start()
    wait_for(lambda: stored() > 0 or not worker.is_alive(), 120, "the first batch")
    runner.stop.set()
    worker.join(120)
    ok, text = result[0]
    assert ok and "stopping: what was read is stored" in text, text
    assert 0 < stored() < n, text
    runner.stop.clear()
    ok, text = runner.run("ingest:bulk")
    assert ok and "stopping" not in text, text
    assert stored() == n


def test_housekeeping_releases_expired_leases_and_prunes_the_log(db, settings_for):
    settings = settings_for(db.url, sources={}, scheduler={"keep_runs_days": 7})
    sub = subscribers.add(db, "ada@example.org", topics=[TOPIC])
    subscribers.add(db, "stale@example.org", topics=[TOPIC], status="pending")
    subscribers.add(db, "fresh@example.org", topics=[TOPIC], status="pending")
    now = datetime.now(UTC)
    with db.session() as s:
        s.execute(update(Subscriber).where(Subscriber.email == "stale@example.org")
                  .values(created_at=now - timedelta(days=8)))
        for days in (30, 1):
            at = now - timedelta(days=days)
            s.add(JobRun(job_id="tick", instance="old", started_at=at, finished_at=at, ok=True, summary=""))
    for period, lease in (("2024-01-01", timedelta(minutes=-1)), ("2024-01-02", timedelta(minutes=5))):
        ledger.write(db, [Edition(sub.id, sub.email, period, None, now, now)], "example.org")
        assert ledger.claim(db, "gone:1:abc", now, 1, lease=lease)  # claimed, then its sender died (or not)
    ok, text = Runner(settings, db).run("housekeeping")
    assert ok and text == "released 1 expired leases, pruned 1 job runs, forgot 1 unconfirmed sign-ups"
    assert [v.email for v in subscribers.list_all(db)] == ["ada@example.org", "fresh@example.org"]
    with db.session() as s:
        assert dict(s.execute(select(Delivery.period, Delivery.status)).all()) == {
            "2024-01-01": "planned", "2024-01-02": "sending"}
        assert s.scalar(select(func.count()).select_from(JobRun)) == 2  # the recent one, and this run


def test_database_job_store_keeps_schedule_state_across_restarts(db, settings_for, tmp_path):
    listing = tmp_path / "listing.json"
    listing.write_text("[]")

    def settings(schedule: str, *names: str):
        return settings_for(db.url,
                            sources={n: {"type": "file", "paths": [str(listing)], "schedule": schedule}
                                             for n in names},
                            scheduler={"job_store": "database", "ingest_on_start": False,
                                       "tick_seconds": 3600})

    first = Runner(settings("0 3 * * *", "a", "b"), db)
    first.start()
    later = first.scheduler.get_job("ingest:a").next_run_time + timedelta(days=3)
    first.scheduler.get_job("ingest:a").modify(next_run_time=later)  # state worth keeping
    first.shutdown()
    with db.session() as s:
        assert all(r.next_run_at is None for r in s.scalars(select(JobState)))  # stopped: no next runs shown

    second = Runner(settings("0 3 * * *", "a"), db)  # source b is gone
    second.start()
    try:
        assert second.scheduler.get_job("ingest:a").next_run_time == later
        assert second.scheduler.get_job("ingest:b") is None
        with db.session() as s:
            assert s.get(JobState, "ingest:a").next_run_at == later
    finally:
        second.shutdown()
    third = Runner(settings("0 4 * * *", "a"), db)  # a new schedule replaces the stored one
    third.start()
    try:
        assert third.scheduler.get_job("ingest:a").next_run_time.hour == 4
    finally:
        third.shutdown()


# ------------------------------------------------------------------------------------------ subprocesses


def quiet_zones(n: int) -> list[str]:
    """Zones whose local clock is well away from midnight now, so no period ends during a test."""
    zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
             "America/Los_Angeles",
             "Asia/Kolkata", "Pacific/Auckland", "America/Sao_Paulo"]
    now = datetime.now(UTC)
    ok = [z for z in zones if 1 <= now.astimezone(ZoneInfo(z)).hour <= 21]
    assert len(ok) >= n
    return ok[:n]


def write_config(path: Path, db_url: str, smtp: SmtpSink, *, sources: str = "[sources]",
                 tick: float = 0.5) -> Path:
    path.write_text(f"""
[database]
url = "{db_url}"
{sources}
[http]
retries = 0
[mail]
transport = "smtp"
from_address = "Trending Papers <digest@example.org>"
[mail.smtp]
host = "{smtp.host}"
port = {smtp.port}
[web]
secret_file = "{path.parent / 'secret'}"
[scheduler]
tick_seconds = {tick}
""")
    (path.parent / "secret").write_text("scheduler-test-secret")  # the scheduler runs without $DIGEST_SECRET
    return path


def start_scheduler(cfg: Path, name: str) -> tuple[subprocess.Popen, Path]:
    log = cfg.parent / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    proc = subprocess.Popen([sys.executable, "-m", "digest.cli", "--config", str(cfg), "scheduler"],
                            cwd=cfg.parent, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    return proc, log


def wait_started(*procs: tuple[subprocess.Popen, Path]) -> None:
    """Until each process says it has started (imports take a while on a busy machine)."""
    for proc, log in procs:
        wait_for(lambda p=proc, f=log: "started:" in f.read_text() or p.poll() is not None, 120,
                 f"{log.name} to start")
        assert proc.poll() is None, log.read_text()


def stop(proc: subprocess.Popen, log: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    text = log.read_text()
    assert code == 0, text
    assert "SIGTERM: finishing the work in flight" in text and "stopped cleanly" in text, text
    assert "Traceback" not in text, text
    return text


@pytest.fixture
def sqlite_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'digest.store.db'}")
    database.init()
    yield database
    database.dispose()


def test_scheduler_process_ingests_sends_and_stops_cleanly_on_sigterm(sqlite_db, tmp_path):
    """(SQLite only: PostgreSQL runs the same shutdown path in-process, and two processes below.)"""
    db = sqlite_db
    topics = ["language models", "reasoning", "hallucinations", "reward modeling"]
    zone = quiet_zones(1)[0]
    emails = [f"reader{i}@example.org" for i in range(len(topics))]
    for e, t in zip(emails, topics, strict=True):
        subscribers.add(db, e, topics=[t], hour=0, timezone=zone)
    with ReplayServer() as http, SmtpSink(faults=SLOW) as sink:
        http.add("/api/daily_papers", Reply(body=HF_FIXTURE.read_bytes()))
        hf = (f'[sources.hf]\ntype = "hf_daily"\nbase_url = "{http.url}"\nbackfill_days = 0\nschedule = "0 0 '
              '1 1 *"')
        cfg = write_config(tmp_path / "config.toml", db.url, sink, sources=hf)

        proc, log = start_scheduler(cfg, "first")
        try:
            wait_started((proc, log))
            wait_for(lambda: len(sink.messages) >= 1, 60, "the first message")
        finally:
            text = stop(proc, log)
        assert "job ingest:hf ok" in text and "29 new" in text
        got = statuses(db)
        assert got["sent"] == len(sink.messages) < len(emails)  # stopped mid-batch; nothing unrecorded
        assert got["planned"] == len(emails) - got["sent"] and got["sending"] == 0
        assert http.hits("/api/daily_papers")

        proc, log = start_scheduler(cfg, "second")  # a restart sends the rest, and nothing twice
        try:
            wait_started((proc, log))
            wait_for(lambda: len(sink.messages) >= len(emails), 60, "every message")
            time.sleep(1.0)  # a few more ticks: nothing more to send
        finally:
            stop(proc, log)
    assert Counter(m.recipients[0] for m in sink.messages) == Counter(emails)
    assert statuses(db) == Counter({"sent": len(emails)})


def test_two_schedulers_one_database_one_message_per_due_subscriber(db, tmp_path):
    add_tagged(db, 6, datetime.now(UTC) - timedelta(minutes=5), "today")
    for zone in quiet_zones(3):
        today = datetime.now(UTC).astimezone(ZoneInfo(zone)).weekday()
        tag = zone.replace("/", "-").lower()
        subscribers.add(db, f"daily-{tag}@example.org", topics=[TOPIC], timezone=zone, hour=0)
        subscribers.add(db, f"late-{tag}@example.org", topics=[TOPIC], timezone=zone, hour=23)
        subscribers.add(db, f"weekdays-{tag}@example.org", topics=[TOPIC], timezone=zone, hour=0,
                        frequency="weekdays")
        subscribers.add(db, f"weekly-{tag}@example.org", topics=[TOPIC], timezone=zone, hour=0,
                        frequency="weekly",
                        weekday=DAY_NAMES[today].lower())
        subscribers.add(db, f"weekly-late-{tag}@example.org", topics=[TOPIC], timezone=zone, hour=23,
                        frequency="weekly", weekday=DAY_NAMES[today].lower())
    due = {r["email"] for r in due_at(StoreReads(db), datetime.now(UTC)) if r["due"]}
    assert len(due) >= 6  # daily and weekly ones everywhere, weekdays ones on a weekday; no "late-" one

    with SmtpSink() as sink:
        cfg = write_config(tmp_path / "config.toml", db.url, sink)
        procs = [start_scheduler(cfg, name) for name in ("one", "two")]
        try:
            wait_started(*procs)
            wait_for(lambda: len(sink.messages) >= len(due), 60, "a message per due subscriber")
            time.sleep(2.0)  # several more ticks of both: nothing more may arrive
        finally:
            logs = [stop(p, log) for p, log in procs]
    assert Counter(m.recipients[0] for m in sink.messages) == Counter(due)
    check = Database(db.url)
    with check.session() as s:
        ticks = dict(s.execute(select(JobRun.instance, func.count()).where(JobRun.job_id == "tick")
                               .group_by(JobRun.instance)).all())
    check.dispose()
    assert len(ticks) == 2 and all(n >= 2 for n in ticks.values())  # both really ran, side by side
    assert all("job tick ok" in text for text in logs)


@pytest.mark.sqlite_only
def test_start_warns_when_smtp_links_are_plain_http(db, settings_for, caplog):
    for base, warned in (("http://papers.example.org", True), ("https://papers.example.org", False)):
        settings = settings_for(db.url, sources={}, web={"base_url": base}, mail={"transport": "smtp"},
                                scheduler={"ingest_on_start": False, "tick_seconds": 3600})
        caplog.clear()
        runner = Runner(settings, db)
        runner.start()
        runner.shutdown()
        found = [r for r in caplog.records if r.levelname == "WARNING" and "RFC 8058" in r.getMessage()]
        assert bool(found) is warned, base
