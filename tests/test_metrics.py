"""Issue 15, item 6: Prometheus metrics, scraped over HTTP from the real processes.

`digest serve`'s app runs under uvicorn on a loopback port; mail goes to a real SMTP server (aiosmtpd);
the scheduler runs as its own process (`digest scheduler`) with its metrics server on a port. What is
scraped is parsed with prometheus-client's own parser.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from test_scheduler import quiet_zones, start_scheduler, stop, wait_for, wait_started, write_config

from digest.config import bundled_listings
from digest.mail.sink import SmtpSink, free_port
from digest.scheduler import Runner
from digest.subscriptions import subscribers
from digest.usecases import ingesting, monitoring, planning, sending
from digest.web.app import create_app
from tests.factories import add_titled

TITLES = ["Graph neural networks for molecule property prediction",
          "Graph neural networks meet language models",
          "Scaling diffusion models for video generation"]


@contextmanager
def served(app) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample at `url`: (name, sorted labels) -> value."""
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def add_papers(db) -> None:
    add_titled(db, TITLES)


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


def test_serve_metrics_move_after_a_real_send_and_ingest(db, settings_for, sink):
    settings = settings_for(db.url, mail={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port},
                                          "from_address": "Trending Papers <digest@example.org>"},
                            sources={"sample": {"type": "file", "paths": bundled_listings()}})
    add_papers(db)
    for email in ("ada@example.org", "bob@example.org", "gone@example.org"):
        subscribers.add(db, email, topics=["graph neural networks"])
    sink.handler.faults.reject.add("gone@example.org")
    with served(create_app(settings, db)) as base:
        before = scrape(base + "/metrics")
        assert value(before, "digest_database_up") == 1
        assert value(before, "digest_deliveries", state="sent") == 0  # every state is there, at 0
        assert value(before, "digest_subscribers", status="active") == 3

        planning.plan(db, settings)
        report = sending.send(db, settings)
        assert (report.sent, report.failed) == (2, 1) and len(sink.messages) == 2
        ingested = ingesting.ingest(db, settings)
        after = scrape(base + "/metrics")

    def moved(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("digest_messages_sent_total", transport="smtp") == 2
    assert moved("digest_messages_failed_total", transport="smtp") == 1
    assert value(after, "digest_send_rate_messages_per_second", transport="smtp") > 0
    assert moved("digest_send_run_duration_seconds_count", transport="smtp") == 1
    # the database's view, read at scrape time
    assert value(after, "digest_deliveries", state="sent") == 2
    assert value(after, "digest_deliveries", state="failed") == 1
    assert value(after, "digest_last_sent_timestamp_seconds") > time.time() - 600
    # ingest, per source
    new = ingested.sources[0].new
    assert new > 0 and moved("digest_papers_total", source="sample", outcome="new") == new
    assert moved("digest_papers_total", source="sample", outcome="skipped") == ingested.sources[0].skipped
    assert moved("digest_source_runs_total", source="sample", result="ok") == 1
    assert value(after, "digest_source_last_success_timestamp_seconds", source="sample") > time.time() - 600
    assert value(after, "digest_source_papers_recorded", source="sample", outcome="new") == new


def test_metrics_are_only_for_the_allowed_networks(db, settings_for):
    settings = settings_for(db.url, metrics={"allow": ["10.0.0.0/8"]})
    with served(create_app(settings, db)) as base:
        r = httpx.get(base + "/metrics")
        assert r.status_code == 404 and "digest_" not in r.text
        assert httpx.get(base + "/healthz").status_code == 200
    off = settings_for(db.url, metrics={"enabled": False})
    with served(create_app(off, db)) as base:
        assert httpx.get(base + "/metrics").status_code == 404


def test_a_bad_network_in_the_config_is_refused_with_its_key(settings_for, db):
    from digest.config import ConfigError

    with pytest.raises((ConfigError, ValueError), match="metrics.allow|not a network address"):
        settings_for(db.url, metrics={"allow": ["10.0.0.0/8", "localhost"]})


@pytest.mark.sqlite_only
def test_sending_processes_are_counted_in_the_parent(db, settings_for, sink):
    """`digest send --workers 2`: the sends happen in spawned processes; the parent counts their reports."""
    settings = settings_for(db.url, mail={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port},
                                          "from_address": "Trending Papers <digest@example.org>",
                                          "workers": 2})
    add_papers(db)
    for i in range(6):
        subscribers.add(db, f"reader{i}@example.org", topics=["graph neural networks"])
    registry = monitoring.metrics_registry(db, settings)
    before = registry.get_sample_value("digest_messages_sent_total", {"transport": "smtp"}) or 0
    planning.plan(db, settings)
    report = sending.send(db, settings)
    assert report.sent == 6 == len(sink.messages)
    assert registry.get_sample_value("digest_messages_sent_total", {"transport": "smtp"}) - before == 6
    assert registry.get_sample_value("digest_deliveries", {"state": "sent"}) == 6


def test_scheduler_runner_serves_job_metrics_on_a_port(db, settings_for, sink):
    settings = settings_for(db.url, mail={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port},
                                          "from_address": "Trending Papers <digest@example.org>"}, sources={})
    add_papers(db)
    subscribers.add(db, "ada@example.org", topics=["graph neural networks"], hour=0,
                    timezone=quiet_zones(1)[0])
    runner = Runner(settings, db)
    port = runner.serve_metrics("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        before = scrape(url)
        ok, text = runner.run("tick")
        assert ok and "sent 1" in text, text
        after = scrape(url)
    finally:
        runner.shutdown()
    assert value(after, "digest_job_runs_total", job="tick", result="ok") - value(
        before, "digest_job_runs_total", job="tick", result="ok") == 1
    assert value(after, "digest_job_duration_seconds_count", job="tick") - value(
        before, "digest_job_duration_seconds_count", job="tick") == 1
    assert value(after, "digest_job_last_run_ok", job="tick") == 1
    assert value(after, "digest_messages_sent_total", transport="smtp") - value(
        before, "digest_messages_sent_total", transport="smtp") == 1
    with pytest.raises(httpx.TransportError):  # shut down with the scheduler
        httpx.get(url, timeout=2)


@pytest.mark.sqlite_only
def test_scheduler_process_counts_its_sends_on_its_metrics_port(db, tmp_path, sink):
    """`digest scheduler` as its own process: it ingests the sample listings, sends what is due, and its
    metrics server says so (the counters of the process that sent)."""
    zone = quiet_zones(1)[0]
    for i, topic in enumerate(["language models", "reasoning"]):
        subscribers.add(db, f"reader{i}@example.org", topics=[topic], hour=0, timezone=zone)
    port = free_port()
    paths = ", ".join(f'"{p}"' for p in bundled_listings())
    sources = (f'[sources.sample]\ntype = "file"\npaths = [{paths}]\n[metrics]\nscheduler_port = {port}\n'
               '[digest]\nranker = "lexical"\n')
    cfg = write_config(tmp_path / "config.toml", db.url, sink, sources=sources)
    proc, log = start_scheduler(cfg, "metrics")
    try:
        wait_started((proc, log))
        wait_for(lambda: len(sink.messages) >= 2, 90, "both digests")
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: value(scrape(url), "digest_job_runs_total", job="tick", result="ok") >= 1, 30,
                 "a tick")
        got = scrape(url)
    finally:
        text = stop(proc, log)
    assert f"metrics on http://127.0.0.1:{port}/metrics" in text
    assert value(got, "digest_messages_sent_total", transport="smtp") == 2
    assert value(got, "digest_deliveries", state="sent") == 2
    assert value(got, "digest_papers_total", source="sample", outcome="new") > 0
    assert value(got, "digest_job_runs_total", job="ingest:sample", result="ok") == 1
    assert value(got, "digest_source_last_success_timestamp_seconds", source="sample") > time.time() - 600
