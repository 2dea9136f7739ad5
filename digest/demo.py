"""`digest demo`: the whole product on bundled sample listings, with no network and no config.

The demo only ever removes what it made itself. Before it creates anything in its folder it writes
`.digest-demo` there, naming what it is about to make (its database files and its outbox); the next
run removes exactly those and nothing else. A folder that holds a database, an outbox or a config the
demo did not make (a live install: `digest demo --dir .`) is refused in one line, and nothing is
touched.
"""

from __future__ import annotations

import json
import os
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


MARKER = ".digest-demo"  # what the demo made in its folder, one name a line in a JSON list
DATABASE = "digest.db"
MADE = (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", f"{DATABASE}-journal", "outbox")
# What a live install keeps in its folder: the demo never runs beside these unless it made them.
LIVE = (*MADE, "digest.store.db", "config.toml", ".digest-secret")


class DemoFolderError(ValueError):
    """The folder holds data the demo did not make; the message says what, in one line."""


def _made_before(directory: Path) -> set[str]:
    """The names an earlier demo run recorded as its own in `directory` (none without its marker)."""
    try:
        names = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError, ValueError):
        raise DemoFolderError(f"{directory}/{MARKER} is not the demo's record of what it made; "
                              "run the demo in a new folder (--dir)") from None
    return {n for n in names if n in MADE} if isinstance(names, list) else set()


def claim_folder(directory: Path) -> None:
    """Make `directory` the demo's: refuse (DemoFolderError) if it holds anything of a live install the
    demo did not make; else remove what an earlier demo run made there, and record what this one makes."""
    if directory.exists() and not directory.is_dir():
        raise DemoFolderError(f"{directory} is not a folder")
    ours = _made_before(directory)
    foreign = [n for n in LIVE if (os.path.lexists(directory / n) and n not in ours)]
    foreign += [n for n in ours if (directory / n).is_symlink()]
    if foreign:
        raise DemoFolderError(f"{directory} holds {', '.join(foreign)}, which the demo did not make "
                              "(a live install?): nothing was changed; run the demo in its own folder, "
                              "e.g. `digest demo --dir demo`")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text(json.dumps(list(MADE)) + "\n", encoding="utf-8")
    for name in ours:
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def run_demo(directory: Path) -> tuple[list[dict], Path, str]:
    """Fresh database in `directory`, three subscribers, a real SMTP round trip; returns a summary:
    a row per subscriber, the outbox, and what ranked the digests. Refuses a folder holding data the
    demo did not make (`claim_folder`)."""
    claim_folder(directory)
    outbox = directory / "outbox"
    with SmtpSink(outbox=outbox) as sink:
        settings = from_dict({
            "database": {"url": f"sqlite:///{directory / DATABASE}"},
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
