"""Issue 26, item 3: what `digest serve` and `digest scheduler` serve on /metrics passes Prometheus's own
linter, `promtool check metrics` (Debian `prometheus`): names, types, help text, units and suffixes.

Both run as real processes on one SQLite database, after the scheduler has ingested the sample listings
and sent two digests to a real SMTP server, so every family has samples (labelled counters, histograms,
the database's gauges). A registry with a badly named metric fails the same check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
import pytest
from prometheus_client import Gauge
from test_metrics import scrape, value
from test_scheduler import quiet_zones, start_scheduler, stop, wait_for, wait_started, write_config

from digest import metrics
from digest.config import bundled_listings
from digest.mail.sink import free_port
from digest.subscriptions import subscribers

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.skipif(
        shutil.which("promtool") is None and not os.environ.get("CI"),
        reason="needs promtool (Debian's prometheus; .ci/run installs it)",
    ),
]


def promtool(text: str) -> tuple[int, str]:
    """`promtool check metrics` on an exposition: (exit code, what it found)."""
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def test_serve_and_scheduler_metrics_pass_promtool(db, tmp_path, smtp_sink):
    zone = quiet_zones(1)[0]
    for i, topic in enumerate(["language models", "reasoning"]):
        subscribers.add(db, f"reader{i}@example.org", topics=[topic], hour=0, timezone=zone)
    port = free_port()
    paths = ", ".join(f'"{p}"' for p in bundled_listings())
    cfg = write_config(
        tmp_path / "config.toml",
        db.url,
        smtp_sink,
        sources=f'[sources.sample]\ntype = "file"\npaths = [{paths}]\n[metrics]\n'
        f'scheduler_port = {port}\n[digest]\nranker = "lexical"\n',
    )
    scheduler = start_scheduler(cfg, "scheduler")
    web_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    serve_log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest.cli",
            "--config",
            str(cfg),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(web_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=serve_log.open("w"),
    )
    try:
        wait_started(scheduler)
        wait_for(lambda: len(smtp_sink.messages) >= 2, 90, "both digests")
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(
            lambda: value(scrape(url), "digest_job_runs_total", job="tick", result="ok") >= 1, 30, "a tick"
        )
        scheduler_text = httpx.get(url, timeout=10).text

        def serving() -> bool:
            assert serve.poll() is None, serve_log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{web_port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(serving, 120, "digest serve")
        serve_text = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=10).text
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        stop(*scheduler)

    # the expositions hold what the linter should see: counters, histograms, the database's gauges
    assert 'digest_messages_sent_total{transport="smtp"} 2.0' in scheduler_text
    assert "digest_job_duration_seconds_bucket" in scheduler_text
    assert 'digest_deliveries{state="sent"} 2.0' in serve_text and "digest_database_up 1.0" in serve_text
    for name, text in (("digest scheduler", scheduler_text), ("digest serve", serve_text)):
        code, found = promtool(text)
        extra = f", {found}" if found else ""
        print(f"{name}: promtool check metrics -> exit {code}, {len(text.splitlines())} lines{extra}")
        assert (code, found) == (0, ""), f"{name}: {found}"


def test_a_badly_named_metric_fails_promtool():
    """The serving registry plus one gauge named against the conventions (camelCase, a counter's suffix on
    a gauge): promtool names both."""
    reg = metrics.registry()
    assert promtool(metrics.generate_latest(reg).decode()) == (0, "")
    Gauge("digestQueueDepth", "Deliveries waiting to be sent.", registry=reg)
    Gauge("digest_retries_total", "Deliveries waiting for a retry.", registry=reg)
    code, found = promtool(metrics.generate_latest(reg).decode())
    assert code != 0
    assert "digestQueueDepth metric names should be written in 'snake_case' not 'camelCase'" in found
    assert 'digest_retries_total non-counter metrics should not have "_total" suffix' in found
