"""One database, one signing secret (issue 23, item 4). Without $DIGEST_SECRET the database keeps the
secret it generated, so every directory and process using that database signs alike; a secret set
over it later signs from then on while the database's own still verifies what is already out."""

from __future__ import annotations

import email
import email.policy
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from digest.config import from_dict
from digest.mail.webhook import Sealer
from digest.subscriptions import tokens
from digest.subscriptions.links import links_for
from digest.usecases import setup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def home(root: Path, name: str, db_url: str, port: int) -> Path:
    """An admin's working directory with its own config, using the shared database."""
    folder = root / name
    folder.mkdir()
    (folder / "config.toml").write_text(f'[database]\nurl = "{db_url}"\n[digest]\nranker = "lexical"\n'
                                        f'[web]\nbase_url = "http://127.0.0.1:{port}"\n')
    return folder


def digest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DIGEST_CONFIG", "DIGEST_SECRET")}
    out = subprocess.run([sys.executable, "-m", "digest.cli", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out


def test_a_link_mailed_from_one_directory_opens_in_serve_from_another(tmp_path, db_url):
    port = free_port()
    a, b = home(tmp_path, "a", db_url, port), home(tmp_path, "b", db_url, port)
    digest(a, "subscribers", "add", "ada@example.org", "--topic", "diffusion models", "--topic", "language")
    digest(a, "run")
    eml = next((a / "outbox").glob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    unsubscribe = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", str(msg["List-Unsubscribe"])).group(1)
    preferences = re.search(r"http://127\.0\.0\.1:\d+/preferences/[A-Za-z0-9_.\-]+",
                            msg.get_body(("plain",)).get_content()).group(0)
    assert not (a / ".digest-secret").exists() and not (b / ".digest-secret").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("DIGEST_CONFIG", "DIGEST_SECRET")}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "digest.cli", "serve", "--port", str(port)], cwd=b,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        assert httpx.get(preferences, timeout=10).status_code == 200
        one_click = httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}, timeout=10)
        assert one_click.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    assert "unsubscribed" in digest(b, "subscribers", "list").stdout
    # a secret set later: said once, at start, in one line; the link mailed before still opens
    env_set = {**env, "DIGEST_SECRET": "set-later-" + "k" * 30}
    out = subprocess.run([sys.executable, "-m", "digest.cli", "subscribers", "list"], cwd=b, env=env_set,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and [line for line in out.stderr.splitlines() if "still verify" in line] == [
        "note: signing with the configured secret ($DIGEST_SECRET or web.secret_file); the 1 secret(s) this "
        "database signed with before still verify the links and webhook URLs already out"]
    assert not (b / ".digest-secret").exists()


def open_settings(db_url: str, **web):
    settings = from_dict({"database": {"url": db_url}, "web": web})
    db, _ = setup.open_database(settings)
    return settings, db


def test_every_directory_gets_the_database_secret(tmp_path, db_url, monkeypatch):
    monkeypatch.delenv("DIGEST_SECRET")
    signed = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        settings, db = open_settings(db_url)
        signed.append(settings.secrets())
        db.dispose()
    assert signed[0] == signed[1] and len(signed[0]) == 1 and len(signed[0][0]) > 30
    assert not list(tmp_path.rglob(".digest-secret"))


def test_a_secret_set_over_the_generated_one_keeps_what_is_out_working(tmp_path, db_url, monkeypatch):
    monkeypatch.delenv("DIGEST_SECRET")
    monkeypatch.chdir(tmp_path)
    before, db = open_settings(db_url)
    link = links_for(before).unsubscribe(7).rsplit("/", 1)[1]
    sealed = Sealer(before.secrets()).seal("https://hooks.slack.com/services/T0/B1/SECRET")
    db.dispose()

    monkeypatch.setenv("DIGEST_SECRET", "the-admin-set-this-one-" + "z" * 20)  # README "Run it" does this
    after, db = open_settings(db_url)
    db.dispose()
    assert after.secret() == "the-admin-set-this-one-" + "z" * 20
    assert after.secrets()[1:] == before.secrets()
    assert tokens.read(after.secrets(), "unsubscribe", link)["s"] == 7  # a link already mailed
    assert Sealer(after.secrets()).open(sealed).endswith("/SECRET")  # a webhook already stored
    new = links_for(after).unsubscribe(7).rsplit("/", 1)[1]
    with pytest.raises(tokens.TokenError):
        tokens.read(before.secrets(), "unsubscribe", new)  # new links are signed with the set secret
    said = after.take_notices()
    assert len(said) == 1 and "still verify" in said[0] and "$DIGEST_SECRET" in said[0]


def test_an_earlier_versions_secret_file_is_adopted(tmp_path, monkeypatch):
    """Earlier versions kept a generated secret in .digest-secret beside the SQLite database: the links
    made with it keep working, and it becomes the database's secret."""
    monkeypatch.delenv("DIGEST_SECRET")
    (tmp_path / ".digest-secret").write_text("an-earlier-generated-secret-" + "q" * 20 + "\n")
    settings, db = open_settings(f"sqlite:///{tmp_path / 'digest.db'}")
    assert settings.secrets() == ("an-earlier-generated-secret-" + "q" * 20,)
    db.dispose()
    (tmp_path / ".digest-secret").unlink()
    again, db = open_settings(f"sqlite:///{tmp_path / 'digest.db'}")
    db.dispose()
    assert again.secrets() == settings.secrets()


def test_processes_starting_at_once_keep_one_generated_secret(tmp_path, db_url, monkeypatch):
    """The first start of several processes at once: each may make a secret, one is kept, all sign
    with it."""
    from concurrent.futures import ThreadPoolExecutor

    from digest.store.db import Database
    from digest.store.secrets import database_secrets

    db = Database(db_url)
    db.init()
    try:
        with ThreadPoolExecutor(6) as pool:
            found = list(pool.map(lambda _: tuple(database_secrets(db, None, generate=True)), range(6)))
    finally:
        db.dispose()
    assert len(set(found)) == 1 and len(found[0]) == 1
