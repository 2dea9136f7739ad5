"""`digest demo`: the whole product on bundled sample listings, with no network and no config."""

from __future__ import annotations

import shutil
from pathlib import Path

from digest.config import from_dict
from digest.mail.sink import SmtpSink
from digest.subscriptions import subscribers
from digest.usecases import ingesting, pages, sending, setup

DEMO_SUBSCRIBERS = [
    ("ada@example.org", "Ada", ["large language models", "reasoning"], "Europe/London"),
    ("grace@example.org", "Grace", ["diffusion models", "image generation"], "America/New_York"),
    ("alan@example.org", "Alan", ["graph neural networks", "federated learning"], "Asia/Tokyo"),
]


def run_demo(directory: Path) -> tuple[list[dict], Path, str]:
    """Fresh database in `directory`, three subscribers, a real SMTP round trip; returns a summary:
    a row per subscriber, the outbox, and what ranked the digests."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("digest.store.db", "digest.store.db-wal", "digest.store.db-shm"):
        (directory / name).unlink(missing_ok=True)
    outbox = directory / "outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    with SmtpSink(outbox=outbox) as sink:
        settings = from_dict({
            "database": {"url": f"sqlite:///{directory / 'digest.store.db'}"},
            "mail": {"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port},
                     "from_address": "Trending Papers <digest@example.org>",
                     "unsubscribe_mailto": "unsubscribe@example.org",
                     "list_id": "Trending papers demo <demo.digest.example.org>"},
        }, "demo settings")
        db, _ = setup.open_database(settings)
        report = ingesting.ingest(db, settings)
        for email, name, topics, tz in DEMO_SUBSCRIBERS:
            subscribers.add(db, email, name=name, topics=topics, timezone=tz)
        sent = sending.run_pass(db, settings).send
        files = {m.recipients[0]: m.path for m in sink.messages}
    if sent.sent != len(DEMO_SUBSCRIBERS) or report.sources[0].new == 0:
        raise RuntimeError(f"demo incomplete: ingested {report.sources[0].new} papers, sent {sent.sent} "
                           "digests")
    rows = []
    for email, _, _, _ in DEMO_SUBSCRIBERS:
        edition = pages.recent_editions(db, settings, subscribers.get(db, email).id, limit=1)[0]
        path = files.get(email)
        rows.append({"email": email, "papers": len(edition.items),
                     "top": edition.items[0].title if edition.items else "",
                     "file": str(path) if path else ""})
    db.dispose()
    ranked = ingesting.ranked_by(settings)
    if report.embedded:
        ranked += f", {report.embedded} papers embedded"
    return rows, outbox, ranked
