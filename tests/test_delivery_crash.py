"""Crash safety: a sender killed with SIGKILL at random points of a 500-recipient run, then resumed.

The sender is a subprocess running `digest.delivery.sender.send` (what `digest send` runs after planning; the
deliveries are planned here, so the kills land in sending). The SMTP sink runs in this test process,
so it outlives every killed sender. After the last kill, a final sender finishes the run. Every recipient
must be in the sink, every delivery `sent`, and
at most one message per kill may arrive twice (the one the server accepted before the ledger said so).
Set CRASH_SEED to replay a particular sequence of kill points.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.mail.sink import SmtpSink
from digest.store.models import Delivery
from tests.factories import BASE, addr, mail_settings, planned_world

N = 500
LEASE = 0.5  # seconds: a killed sender's claims are resumed this long after its last renewal
ROOT = Path(__file__).resolve().parent.parent
SENDER = """
import json, sys
from digest import config
from digest.delivery import sender
from digest.store.db import Database
settings = config.load(sys.argv[1])
r = sender.send(Database(settings.database.url), settings)
print(json.dumps({"sent": r.sent, "failed": r.failed, "errors": r.errors}))
"""


def digest_send(cfg: Path, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SENDER, str(cfg)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=log)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(db, db_url, settings_for, tmp_path):
    seed = int(os.environ.get("CRASH_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    kills_wanted = 3 if db_url.startswith("sqlite") else 2
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink, lease_seconds=LEASE)
        planned_world(db, settings, N)
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[database]\nurl = "{db_url}"\n'
                       f'[web]\nbase_url = "{BASE}"\nsecret_file = "{tmp_path / "secret"}"\n'
                       f'[mail]\ntransport = "smtp"\nfrom_address = "Trending Papers <digest@example.org>"\n'
                       f'lease_seconds = {LEASE}\n'
                       f'[mail.smtp]\nhost = "{sink.host}"\nport = {sink.port}\n')
        kills = 0
        with open(tmp_path / "senders.log", "wb") as log:
            for _ in range(kills_wanted):
                # anywhere from "before the first message" to well into the run
                target = sink.handler.received + rng.randint(0, 120)
                proc = digest_send(cfg, log)
                deadline = time.monotonic() + 60
                while proc.poll() is None and sink.handler.received < target and time.monotonic() < deadline:
                    time.sleep(0.001)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                proc.communicate()
            # The next sender starts at once: its start-up outlasts the dead one's lease. If it still
            # claims before a lease runs out, that delivery waits for the next run, as in production.
            for _ in range(3):
                final = digest_send(cfg, log)
                out, _ = final.communicate(timeout=120)
                assert final.returncode == 0, (tmp_path / "senders.log").read_text()[-2000:]
                result = json.loads(out)
                assert result["failed"] == 0 and not result["errors"]
                if sink.handler.received >= N:
                    with db.session() as s:
                        unsent = select(func.count()).select_from(Delivery).where(Delivery.status != "sent")
                        if not s.scalar(unsent):
                            break
                time.sleep(LEASE)

        messages = list(sink.messages)
    with db.session() as s:
        ledger = dict(s.execute(select(Delivery.email, Delivery.message_id)).all())
        statuses = Counter(s.scalars(select(Delivery.status)))
    assert statuses == {"sent": N}, f"seed {seed}"
    assert {m.recipients[0] for m in messages} == {addr(i) for i in range(N)}, f"seed {seed}"
    assert all(ledger[m.recipients[0]] == m.message_id for m in messages)
    duplicates = len(messages) - len({m.message_id for m in messages})
    print(f"seed={seed} kills={kills} duplicates={duplicates} received={len(messages)}")
    assert kills >= 1 and duplicates <= kills, f"seed {seed}: {duplicates} duplicates after {kills} kills"


@pytest.mark.slow
def test_sending_processes_send_each_delivery_once_and_a_killed_one_loses_nothing(db, settings_for):
    """`send(workers=3)`: three processes claim from one ledger. One is SIGKILLed mid-run; the others
    finish, the report says one died, and once its leases run out the next send delivers the rest.
    Every recipient gets their digest; only the killed process's message in flight may come twice."""
    import multiprocessing
    import threading

    from digest.delivery.sender import send

    n, lease = 300, 2.0
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink, lease_seconds=lease)
        planned_world(db, settings, n)
        result = {}
        run = threading.Thread(target=lambda: result.update(r=send(db, settings, workers=3, batch=20)))
        run.start()
        deadline = time.monotonic() + 60
        while sink.handler.received < 40 and time.monotonic() < deadline:
            time.sleep(0.001)
        workers = multiprocessing.active_children()
        assert len(workers) == 3
        os.kill(workers[0].pid, signal.SIGKILL)
        run.join(timeout=120)
        first = result["r"]
        assert any("a sending process died" in e for e in first.errors)
        time.sleep(lease)
        rest = send(db, settings, workers=2)
        assert not rest.errors
        messages = list(sink.messages)
    with db.session() as s:
        statuses = Counter(s.scalars(select(Delivery.status)))
    assert statuses == {"sent": n}
    assert {m.recipients[0] for m in messages} == {addr(i) for i in range(n)}
    assert len(messages) - len({m.message_id for m in messages}) <= 1
    assert first.sent + rest.sent <= n  # the report counts only what the ledger recorded
