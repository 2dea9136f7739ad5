"""An outbox that cannot be written (no such folder, a file in the way, a full disk): one line, the
deliveries given back to be written by a later run, no partial file, no traceback, nothing left
`sending`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import main
from digest.delivery.sender import send
from digest.store.models import Delivery
from tests.factories import BASE, FROM, planned_world

pytestmark = pytest.mark.sqlite_only  # the database plays no part


def statuses(db) -> list[str]:
    with db.session() as s:
        return sorted(s.scalars(select(Delivery.status)))


def config(db, tmp_path, outbox) -> str:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{db.url}"\n[web]\nbase_url = "{BASE}"\nsecret_file = '
                   f'"{tmp_path / "s"}"\n[digest]\nranker = "lexical"\n'
                   f'[mail]\ntransport = "outbox"\noutbox_dir = "{outbox}"\nfrom_address = "{FROM}"\n')
    return str(cfg)


def test_an_outbox_that_cannot_be_made_gives_everything_back_in_one_line(db, settings_for, tmp_path):
    settings = settings_for(db.url, web={"base_url": BASE}, mail={"from_address": FROM})
    planned_world(db, settings, 3)
    (tmp_path / "in-the-way").write_text("a file, not a folder")
    out = CliRunner().invoke(main, ["--config", config(db, tmp_path, tmp_path / "in-the-way" / "outbox"),
                                    "send"])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.output
    errors = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "outbox" in errors[0] and "Not a directory" in errors[0]
    assert "Traceback" not in out.output
    assert statuses(db) == ["planned"] * 3

    again = CliRunner().invoke(main, ["--config", config(db, tmp_path, tmp_path / "outbox"), "send"])
    assert again.exit_code == 0, again.output
    assert statuses(db) == ["sent"] * 3 and len(list((tmp_path / "outbox").glob("*.eml"))) == 3


def test_a_write_that_fails_midway_leaves_no_partial_file_and_nothing_sending(db, settings_for, tmp_path):
    outbox = tmp_path / "outbox"
    settings = settings_for(db.url, web={"base_url": BASE},
                            mail={"from_address": FROM, "outbox_dir": str(outbox)})
    ids = planned_world(db, settings, 4)
    blocked = sorted(ids.values())[1]
    stem = blocked.strip("<>").replace("@", "_")  # its .html cannot be put in place: a folder has its name
    (outbox / f"{stem}.html").mkdir(parents=True)
    report = send(db, settings)
    assert report.sent < 4 and len(report.errors) == 1 and f"cannot write {stem}.html" in report.errors[0]
    assert "sending" not in statuses(db)
    assert statuses(db).count("planned") == 4 - report.sent  # given back, unspent: a later run writes them
    files = sorted(p.name for p in outbox.iterdir())
    assert f"{stem}.eml" not in files  # the message without its preview: neither
    assert not [f for f in files if f.endswith(".tmp")]
    assert all((outbox / f).stat().st_size > 0 for f in files if f.endswith(".eml"))


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from digest.mail.transport import OutboxTransport, TransportUnavailable
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
t = OutboxTransport(sys.argv[1])
t.open()
message = b"Message-ID: <big.1@example.org>\\r\\nSubject: big\\r\\n\\r\\n" + b"x" * 50_000 + b"\\r\\n"
try:
    t.send(message, "digest@example.org", "ada@example.org")
except TransportUnavailable as err:
    print(err)
"""


def test_no_room_left_leaves_no_partial_file(tmp_path):
    """The disk fills up mid-message (here: the process may not write a file past 8 KB): the transport
    says so in one line, and no partial .eml is left behind."""
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "outbox")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"outbox {tmp_path / 'outbox'}: cannot write big.1_example.org.eml: "
                                   "File too large")
    assert list((tmp_path / "outbox").iterdir()) == []
