"""An admin's slips on a live install: the demo run in its folder, an upgrade that finds the database
under its earlier default name. Nothing the admin did not ask to lose is lost (issue 23, items 1, 5)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def digest(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"}
    out = subprocess.run([sys.executable, "-m", "digest.cli", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=900)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def emails(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return sorted(r[0] for r in con.execute("SELECT email FROM subscribers"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but SQLite's -wal and -shm (reading the database makes and rewrites them;
    what it holds is compared by its rows)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@pytest.fixture
def live(tmp_path) -> Path:
    """A live install in its folder: the default database with its subscribers, an outbox of sent mail."""
    home = tmp_path / "live"
    home.mkdir()
    rows = "".join(f"reader{i}@example.com,diffusion models\n" for i in range(5))
    (home / "readers.csv").write_text("email,topics\n" + rows)
    digest(home, "subscribers", "import", "readers.csv")
    (home / "outbox").mkdir()
    (home / "outbox" / "0001-reader0_example.com.eml").write_bytes(b"Subject: sent before\r\n\r\nkept\r\n")
    return home


def test_the_demo_refuses_a_live_install_and_touches_nothing(live):
    before = snapshot(live)
    assert (live / "digest.db").exists() and len(emails(live / "digest.db")) == 5
    for where in (".", str(live)):
        out = digest(live, "demo", "--dir", where, check=False)
        assert out.returncode != 0
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert "digest.db" in out.stderr and "did not make" in out.stderr
    assert snapshot(live) == before
    assert emails(live / "digest.db") == [f"reader{i}@example.com" for i in range(5)]


def test_the_demo_refuses_an_outbox_or_config_it_did_not_make(tmp_path):
    for name in ("outbox", "config.toml", "digest.store.db"):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).mkdir() if name == "outbox" else (folder / name).write_text("x = 1\n")
        before = snapshot(folder)
        out = digest(tmp_path, "demo", "--dir", str(folder), check=False)
        assert out.returncode != 0 and name in out.stderr and "Traceback" not in out.stderr
        assert snapshot(folder) == before


def test_the_demo_runs_again_in_its_own_folder_and_keeps_what_it_did_not_make(tmp_path):
    """An earlier run's database and outbox (named in its marker) are made anew; the rest is kept."""
    folder = tmp_path / "demo"
    (folder / "outbox").mkdir(parents=True)
    (folder / ".digest-demo").write_text(json.dumps(["digest.db", "digest.db-wal", "outbox"]))
    (folder / "digest.db").write_bytes(b"an earlier demo run's database")
    (folder / "outbox" / "0001-earlier.eml").write_text("Subject: earlier demo\n\n")
    (folder / "notes.txt").write_text("mine")
    digest(tmp_path, "demo", "--dir", str(folder))
    assert set(json.loads((folder / ".digest-demo").read_text())) >= {"digest.db", "outbox"}
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (folder / "outbox").glob("*.eml")) != [] and \
        not (folder / "outbox" / "0001-earlier.eml").exists()
    assert len(list((folder / "outbox").glob("*.eml"))) == 3
    assert len(emails(folder / "digest.db")) == 3


def test_an_upgrade_finds_the_database_made_under_the_earlier_default_name(tmp_path):
    """Some versions named the default database digest.store.db: an admin upgrading must find their
    subscribers there, told so in one line, and no empty digest.db beside it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[database]\nurl = "sqlite:///digest.store.db"\n')
    digest(home, "subscribers", "add", "ada@example.org", "--topic", "reasoning")
    (home / "config.toml").unlink()  # the upgrade: the default applies again
    out = digest(home, "subscribers", "list")
    assert "ada@example.org" in out.stdout
    assert out.stderr.splitlines() == [
        "note: using digest.store.db (made by an earlier version, whose default name it was); rename it to "
        "digest.db (with its -wal and -shm files) or set database.url"]
    assert not (home / "digest.db").exists()
    # once renamed, the default name is used and nothing more is said
    for suffix in ("", "-wal", "-shm"):
        if (home / f"digest.store.db{suffix}").exists():
            (home / f"digest.store.db{suffix}").rename(home / f"digest.db{suffix}")
    out = digest(home, "subscribers", "list")
    assert "ada@example.org" in out.stdout and out.stderr == ""


def test_a_fresh_install_uses_digest_db(tmp_path):
    digest(tmp_path, "subscribers", "add", "ada@example.org", "--topic", "reasoning")
    assert (tmp_path / "digest.db").exists() and not (tmp_path / "digest.store.db").exists()
