"""End to end on real peers: a local HTTP server replaying the recorded Hugging Face response, a real
SMTP server (aiosmtpd) on loopback, a real database, driven through the `digest` CLI."""

from __future__ import annotations

import email
import email.policy
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from digest.cli import main
from digest.mail.sink import SmtpSink
from digest.store.db import Database
from digest.store.models import Delivery, DeliveryItem
from tests.httpreplay import ReplayServer, Reply

HF_FIXTURE = Path(__file__).parent / "fixtures" / "hf_daily_papers_2024-10-25.json"
EVIL = 'Framer: <script>alert("x")</script> Interactive Frame Interpolation when P<NP & x>y'
STORED = "Framer: Interactive Frame Interpolation when P<NP & x>y"  # ingest drops the script element


def hf_payload() -> bytes:
    items = json.loads(HF_FIXTURE.read_text())
    for item in items:
        if item["paper"]["id"] == "2410.18978":  # "Framer: Interactive Frame Interpolation"
            item["paper"]["title"] = item["title"] = EVIL
    return json.dumps(items).encode()


@pytest.fixture
def world(tmp_path, db_url):
    with ReplayServer() as http, SmtpSink() as smtp:
        http.add("/api/daily_papers", Reply(body=hf_payload()))
        cfg = tmp_path / "config.toml"
        cfg.write_text(f"""
[database]
url = "{db_url}"
[sources.hf]
type = "hf_daily"
base_url = "{http.url}"
backfill_days = 1
[http]
retries = 0
[mail]
transport = "smtp"
from_address = "Trending Papers <digest@example.org>"
list_id = "Trending papers <digest.example.org>"
unsubscribe_mailto = "unsubscribe@example.org"
[mail.smtp]
host = "{smtp.host}"
port = {smtp.port}
[web]
base_url = "https://digest.example.org"
secret_file = "{tmp_path / 'secret'}"
""")
        runner = CliRunner()

        def digest(*args: str) -> str:
            result = runner.invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        yield digest, smtp, db_url


def test_ingest_rank_render_send_and_no_second_send(world):
    digest, smtp, db_url = world
    report = json.loads(digest("ingest", "--json"))
    assert report["sources"][0]["new"] == 29 and report["sources"][0]["error"] is None
    digest("subscribers", "add", "ada@example.org", "--name", "Ada Lovelace", "--topic", "video generation",
           "--topic", "frame interpolation", "--timezone", "Europe/London")
    digest("subscribers", "add", "alan@example.org", "--topic", "large language models", "--topic",
           "reward modeling")

    first = json.loads(digest("send", "--json"))
    assert first["sent"] == 2 and first["failed"] == 0
    assert len(smtp.messages) == 2
    by_rcpt = {m.recipients[0]: m.message for m in smtp.messages}

    ada = by_rcpt["ada@example.org"]
    assert ada.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in ada.iter_parts()] == ["text/plain", "text/html"]
    for header in ("Date", "Message-ID", "From", "To", "Subject", "List-Id", "List-Unsubscribe"):
        assert ada[header], header
    assert "Ada Lovelace" in str(ada["To"])
    unsub = ada["List-Unsubscribe"]
    assert (unsub.startswith("<https://digest.example.org/unsubscribe/")
            and "mailto:unsubscribe@example.org" in unsub)
    html = ada.get_body(("html",)).get_content()
    text = ada.get_body(("plain",)).get_content()
    # the script element never reaches a message; the rest of the title is escaped in HTML, plain in text
    assert "<script" not in html.lower() and "alert(" not in html and "alert(" not in text
    assert "when P&lt;NP &amp; x&gt;y" in html and STORED in text
    assert re.fullmatch(r"\d+ new papers? for you: Framer: Interactive Frame Interpolation when P<NP & x>y",
                        ada["Subject"])
    assert "frame interpolation" in text.lower()
    assert ("https://digest.example.org/unsubscribe/" in html
            and "https://digest.example.org/unsubscribe/" in text)

    alan_text = by_rcpt["alan@example.org"].get_body(("plain",)).get_content()
    first_pick = alan_text.split("\n1. ", 1)[1].split("\n", 1)[0]
    assert any(w in first_pick for w in ("LLM", "Reward", "Language")), first_pick

    second = json.loads(digest("send", "--json"))
    assert second["sent"] == 0 and len(smtp.messages) == 2
    db = Database(db_url)
    with db.session() as s:
        rows = s.execute(select(Delivery.email, Delivery.status, Delivery.attempts)).all()
        assert sorted(rows) == [("ada@example.org", "sent", 1), ("alan@example.org", "sent", 1)]
        assert s.scalar(select(func.count()).select_from(DeliveryItem)) >= 2
    db.dispose()

    # a paper is never sent twice: tomorrow's edition has nothing new, so it is skipped
    status = json.loads(digest("status", "--json"))
    assert status["papers"] == 29 and status["deliveries"] == {"sent": 2}


def test_preview_eml_is_the_message_as_sent(world):
    digest, smtp, _ = world
    digest("ingest")
    out = digest("preview", "--topic", "diffusion", "--format", "eml")
    msg = email.message_from_string(out, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(smtp.messages) == 0  # a preview sends nothing
    text = msg.get_body(("plain",)).get_content()
    assert "diffusion" in text.lower()
