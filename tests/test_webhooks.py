"""Team channels: webhook subscribers (Slack, Discord, generic JSON), sent through the same ledger.

A real HTTP server on loopback (tests/httpreplay.py) receives the posts, checks each payload against
the limits the services document, and plays the faults: 429 with Retry-After, 503 with an HTTP date,
500, 400, a timeout. Real SQLite and PostgreSQL.

The documented limits, as checked here (independently of digest/delivery/channels/):
- Slack Block Kit: at most 50 blocks per message; a section's text object at most 3,000 characters.
- Discord Execute Webhook: `content` at most 2,000 characters; at most 10 embeds; an embed's title at
  most 256 and description at most 4,096 characters; all embeds together at most 6,000 characters.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from digest.cli import main as cli
from digest.delivery import sender
from digest.delivery.channels.discord import discord
from digest.delivery.channels.generic import generic
from digest.delivery.channels.slack import slack
from digest.mail.webhook import Sealer, WebhookError, check_url, identity, redact, retry_after
from digest.records import DeliveryStatus
from digest.render import DigestContent, Entry
from digest.store.models import Bounce, Delivery, Suppression
from digest.store.models import Subscriber as SubscriberRow
from digest.subscriptions import subscribers, tokens
from tests.factories import BASE, FROM, add_papers, addr, all_rows, plan_editions
from tests.httpreplay import ReplayServer, Reply, Seen

ROOT = Path(__file__).resolve().parent.parent
SECRET_PART = "B0000WEBHOOK/s3cr3tTOKENxyz"  # what must never be printed or logged
S = DeliveryStatus


def u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# ------------------------------------------------------------------ the services' rules, as checks


def slack_problem(body: dict) -> str | None:
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        return "no blocks"
    if len(blocks) > 50:
        return f"invalid_blocks: {len(blocks)} blocks (max 50)"
    for i, b in enumerate(blocks):
        if b.get("type") == "divider":
            continue
        if b.get("type") != "section" or b.get("text", {}).get("type") != "mrkdwn":
            return f"invalid_blocks: block {i} is not a mrkdwn section"
        if not 1 <= u16(b["text"]["text"]) <= 3000:
            return f"invalid_blocks: block {i} text is {u16(b['text']['text'])} characters (max 3000)"
    if not isinstance(body.get("text"), str) or not body["text"]:
        return "no fallback text"
    return None


def discord_problem(body: dict) -> str | None:
    embeds = body.get("embeds", [])
    if u16(body.get("content", "")) > 2000:
        return "content over 2000"
    if len(embeds) > 10:
        return f"{len(embeds)} embeds (max 10)"
    total = 0
    for i, e in enumerate(embeds):
        if u16(e.get("title", "")) > 256:
            return f"embed {i} title over 256"
        if u16(e.get("description", "")) > 4096:
            return f"embed {i} description over 4096"
        total += u16(e.get("title", "")) + u16(e.get("description", ""))
    if total > 6000:
        return f"embeds total {total} characters (max 6000)"
    if body.get("allowed_mentions") != {"parse": []}:
        return "mentions allowed"
    return None


def generic_problem(body: dict) -> str | None:
    need = {"version", "id", "subject", "archive_url", "picks", "trending"}
    return None if need <= body.keys() else f"missing {sorted(need - body.keys())}"


CHECKS = {"slack": slack_problem, "discord": discord_problem, "generic": generic_problem}


def check_payload(seen: Seen) -> str | None:
    """The server's check: the payload must be JSON, sent as JSON, and within its service's rules."""
    if seen.headers.get("content-type") != "application/json":
        return "not application/json"
    try:
        body = json.loads(seen.body)
    except ValueError:
        return "not JSON"
    kind = seen.path.split("/")[1]
    return CHECKS[kind](body) if kind in CHECKS else None


def hook_path(kind: str, name: str = "T0000") -> str:
    return f"/{kind}/services/{name}/{SECRET_PART}"


@pytest.fixture
def server(server):
    """The replay server (conftest), checking every payload against the services' rules."""
    server.check = check_payload
    return server


def posts(srv: ReplayServer, path: str) -> list[dict]:
    return [json.loads(r.body) for r in srv.requests if r.method == "POST" and r.path == path]


# -------------------------------------------------------------------------------- payload shapes


def content(n: int, title: str = "Paper {i}", why: str = "Matches “diffusion models”: diffusion",
            excerpt: str = "We study this at length. " * 10, trending: int = 3) -> DigestContent:
    def entry(i: int, kind: str = "pick") -> Entry:
        return Entry(rank=i, title=title.format(i=i), url=f"https://arxiv.org/abs/2611.{i:05d}",
                     authors="A. Author, B. Author", excerpt=excerpt, why=why if kind == "pick" else "",
                     meta=f"▲ {i} upvotes", pdf_url=f"https://arxiv.org/pdf/2611.{i:05d}")
    return DigestContent(subject=f"{n} new papers for you: {title.format(i=1)}", preheader="",
                         heading=f"{n} new papers",
                         intro="Picked for “diffusion models”.", date_label="Tuesday 01 December 2026",
                         site_name="Trending Papers", email="slack:0123456789ab", frequency_label="daily",
                         archive_url=f"{BASE}/archive/1/2?t=tok", prefs_url=f"{BASE}/prefs?t=tok",
                         unsubscribe_url=f"{BASE}/u?t=tok", picks=[entry(i) for i in range(1, n + 1)],
                         trending=[entry(i, "trending") for i in range(1, trending + 1)])


def test_slack_payload_one_section_per_pick_with_its_why_line():
    body = slack(content(3))
    assert slack_problem(body) is None
    texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    picks = [t for t in texts if t.startswith("*1.") or t.startswith("*2.") or t.startswith("*3.")]
    assert [t.split("|", 1)[1].split(">")[0] for t in picks] == ["Paper 1", "Paper 2", "Paper 3"]
    assert all("_Matches “diffusion models”: diffusion_" in t for t in picks)
    assert "<https://arxiv.org/abs/2611.00001|Paper 1>" in picks[0]
    assert f"<{BASE}/archive/1/2?t=tok|View in browser>" in texts[-1]


@pytest.mark.parametrize("n", [1, 10, 47, 48, 100])
def test_slack_payload_keeps_the_documented_limits_and_counts_what_did_not_fit(n):
    long = "Ünïcødé 🧪 title that goes on " * 12 + "{i}"
    body = slack(content(n, title=long, excerpt="Long abstract. " * 400, trending=10))
    assert slack_problem(body) is None
    shown = sum(t["text"]["text"].count("\n_Matches") for t in body["blocks"] if t["type"] == "section")
    more = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"
            and b["text"]["text"].startswith("…and")]
    left = int(more[0].split()[1]) if more else 0
    assert shown + left >= n and shown >= min(n, 1)  # every pick shown, or counted in the "more" line


def test_untrusted_titles_cannot_mention_or_format():
    body = slack(content(1, title="<!channel> & <https://evil.example|click> *bold*"))
    sections = " ".join(b["text"]["text"] for b in body["blocks"] if b["type"] == "section")
    assert "<!channel>" not in sections and "&lt;!channel&gt; &amp; &lt;https://evil.example" in sections
    d = discord(content(1, title="@everyone [x](https://evil.example) **b**",
                                 why="see [here](https://evil.example)"))
    assert d["allowed_mentions"] == {"parse": []}
    assert ("[here](https://evil.example)" not in json.dumps(d)
            and r"\[here\]\(https://evil.example\)" in d["embeds"][1]["description"])


def test_discord_payload_one_embed_per_pick():
    body = discord(content(3))
    assert discord_problem(body) is None
    assert [e["title"] for e in body["embeds"][1:4]] == ["1. Paper 1", "2. Paper 2", "3. Paper 3"]
    assert body["embeds"][1]["url"] == "https://arxiv.org/abs/2611.00001"
    assert "*Matches “diffusion models”: diffusion*" in body["embeds"][1]["description"]
    assert body["embeds"][0]["url"] == f"{BASE}/archive/1/2?t=tok"


@pytest.mark.parametrize("n", [1, 8, 9, 20, 100])
def test_discord_payload_keeps_the_documented_limits(n):
    body = discord(content(n, title="Ünïcødé 🧪 title " * 30 + "{i}", excerpt="Long abstract. " * 400,
                                    trending=10))
    assert discord_problem(body) is None
    text = json.dumps(body, ensure_ascii=False)
    assert f"{n}. " in text or "more: [see them all]" in text


def test_generic_payload_is_the_documented_json():
    body = generic(content(2, trending=1), "<1.2026-12-01@example.org>")
    assert body["version"] == 1 and body["id"] == "<1.2026-12-01@example.org>"
    assert [p["title"] for p in body["picks"]] == ["Paper 1", "Paper 2"]
    assert body["picks"][0] == {"rank": 1, "title": "Paper 1", "url": "https://arxiv.org/abs/2611.00001",
                                "authors": "A. Author, B. Author",
                                "why": "Matches “diffusion models”: diffusion",
                                "excerpt": "We study this at length. " * 9 + "We study this at length. ",
                                "meta": "▲ 1 upvotes", "pdf_url": "https://arxiv.org/pdf/2611.00001",
                                "code_url": None}
    assert body["archive_url"].startswith(f"{BASE}/archive/")


# ---------------------------------------------------------------------------------- the URL rules


def test_redacted_form_keeps_the_service_and_hides_the_secret():
    assert (redact("https://hooks.slack.com/services/T0000/B0000/XXXX")
            == "https://hooks.slack.com/services/T000…")
    assert (redact("https://discord.com/api/webhooks/12345678/tokentoken")
            == "https://discord.com/api/webhooks/1234…")
    assert redact("https://user:pw@example.org/hook?token=abc") == "https://example.org/hook"
    assert identity("slack", "https://x.example/a") == identity("slack", "https://x.example/a") != identity(
        "discord", "https://x.example/a")


@pytest.mark.parametrize("url, says", [
    ("http://hooks.example.org/services/T1/B2/C3", "must use https"),
    ("ftp://example.org/x", "starts with https://"),
    ("https://user:pw@example.org/x", "user name or password"),
    ("not a url", "starts with https://"),
    ("", "empty"),
])
def test_bad_webhook_urls_are_refused_without_echoing_the_secret(url, says):
    with pytest.raises(WebhookError, match=says) as err:
        check_url(url)
    assert "B2/C3" not in str(err.value) and "pw" not in str(err.value)


def test_sealed_url_opens_only_with_the_same_secret():
    sealed = Sealer("one-secret").seal("https://hooks.slack.com/services/T0/B1/SECRET")
    assert "SECRET" not in sealed and Sealer("one-secret").open(sealed).endswith("/SECRET")
    with pytest.raises(WebhookError, match="signing secret"):
        Sealer("another").open(sealed)


def test_retry_after_seconds_fractions_and_http_dates():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert retry_after("120", now) == 120.0
    assert retry_after("1.5", now) == 1.5
    assert retry_after(format_datetime(now + timedelta(hours=1), usegmt=True), now) == 3600.0
    assert retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0.0
    assert retry_after("soon", now) is None and retry_after(None, now) is None


# ------------------------------------------------------------------------------ through the ledger


def webhook_settings(settings_for, db, tmp_path, **mail):
    return settings_for(db.url, web={"base_url": BASE},
                        mail={"transport": "outbox", "outbox_dir": str(tmp_path / "outbox"),
                              "from_address": FROM,
                              "retry_backoff": 300.0, **mail})


def add_hook(db, settings, srv, kind, name="T0000", topic="large language models"):
    return subscribers.add_webhook(db, settings.secret(), srv.url + hook_path(kind, name), kind,
                                   topics=[topic],
                                   name=f"{kind} team")


def test_each_kind_gets_its_payload_and_the_inbox_its_email(db, settings_for, tmp_path, server):
    settings = webhook_settings(settings_for, db, tmp_path)
    for kind in ("slack", "discord", "generic"):
        server.add(hook_path(kind), Reply(status=204, body=b"") if kind == "discord" else Reply(body=b"ok"))
        add_hook(db, settings, server, kind)
    subscribers.add(db, addr(1), topics=["large language models"])
    pids = add_papers(db, 3)
    plan_editions(db, settings, pids)
    report = sender.send(db, settings)
    assert (report.sent, report.failed, report.retried) == (4, 0, 0)
    assert report.by_transport == {"outbox": {"sent": 1}, "webhook-slack": {"sent": 1},
                                   "webhook-discord": {"sent": 1}, "webhook-generic": {"sent": 1}}
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    rows = {d.email: d for d in all_rows(db, Delivery)}
    assert {d.status for d in rows.values()} == {S.SENT}
    subs = {r.channel: r for r in all_rows(db, SubscriberRow)}

    def archive_of(url: str) -> dict:  # the signed archive link: this subscriber's, this delivery's
        assert url.startswith(f"{BASE}/archive/")
        return tokens.read(settings.secret(), "archive", url.rsplit("/", 1)[1])

    title = "Large language models at scale, part 0"
    slack_body, = posts(server, hook_path("slack"))
    assert slack_problem(slack_body) is None and title in json.dumps(slack_body, ensure_ascii=False)
    footer = slack_body["blocks"][-1]["text"]["text"]
    assert footer.endswith("|Unsubscribe>") and "|View in browser>" in footer
    assert archive_of(footer[1:].split("|")[0]) == {"s": subs["slack"].id, "d": rows[subs["slack"].email].id}
    discord_body, = posts(server, hook_path("discord"))
    assert discord_problem(discord_body) is None
    assert archive_of(discord_body["embeds"][0]["url"]) == {"s": subs["discord"].id,
                                                            "d": rows[subs["discord"].email].id}
    assert [e["title"] for e in discord_body["embeds"][1:]][:1] == [f"1. {title}"]
    generic_body, = posts(server, hook_path("generic"))
    assert generic_body["id"] == rows[subs["generic"].email].message_id
    assert [p["why"] for p in generic_body["picks"]] == ["Matches “large language models”"] * 3
    assert generic_body["subject"] == rows[subs["generic"].email].subject
    keys = {r.headers.get("idempotency-key") for r in server.requests}
    assert keys == {rows[subs[k].email].message_id for k in ("slack", "discord", "generic")}
    # never twice: a second run finds nothing due
    again = sender.send(db, settings)
    assert again.sent == 0 and len([r for r in server.requests if r.method == "POST"]) == 3


def test_faults_end_in_the_right_ledger_state(db, settings_for, tmp_path, server):
    settings = webhook_settings(settings_for, db, tmp_path, webhook_timeout=0.5, max_attempts=3)
    later = datetime.now(UTC) + timedelta(hours=2)
    faults = {
        "T429": Reply(status=429, body=b'{"retry_after": 120}', headers={"Retry-After": "120"}),
        "T503": Reply(status=503, body=b"busy", headers={"Retry-After": format_datetime(later, usegmt=True)}),
        "T500": Reply(status=500, body=b"oops"),
        # a 400 whose body quotes the request path: it must not reach the ledger either
        "T400": Reply(status=400, body=f"invalid_token for {hook_path('slack', 'T400')}",
                      content_type="text/plain"),
        "T9slow": Reply(status=200, body=b"ok", delay=2.0),
    }
    for name, reply in faults.items():
        server.add(hook_path("slack", name), [reply, Reply(status=200, body=b"ok")])
        add_hook(db, settings, server, "slack", name)
    plan_editions(db, settings, add_papers(db, 2))
    before = datetime.now(UTC)
    report = sender.send(db, settings)
    after = datetime.now(UTC)
    assert (report.sent, report.retried, report.failed) == (0, 4, 1)
    assert report.by_transport == {"webhook-slack": {"retried": 4, "failed": 1}}
    by_name = {r.webhook_hint.split("/")[-1].rstrip("…"): r.email for r in all_rows(db, SubscriberRow)}
    rows = {d.email: d for d in all_rows(db, Delivery)}
    state = {name[1:]: rows[by_name[name[:4]]] for name in faults}
    assert {k: (d.status, d.attempts) for k, d in state.items()} == {
        "429": (S.RETRY, 1), "503": (S.RETRY, 1), "500": (S.RETRY, 1), "400": (S.FAILED, 1),
        "9slow": (S.RETRY, 1)}
    # Retry-After honoured (seconds, then an HTTP date); the others wait the email path's backoff
    assert before + timedelta(seconds=120) <= state["429"].next_attempt_at <= after + timedelta(seconds=120)
    # an HTTP date two hours out: obeyed up to an hour (digest.mail.webhook.MAX_RETRY_AFTER)
    assert before + timedelta(hours=1) - timedelta(seconds=1) <= state["503"].next_attempt_at \
        <= after + timedelta(hours=1)
    assert before + timedelta(seconds=300) <= state["500"].next_attempt_at <= after + timedelta(seconds=300)
    assert before + timedelta(seconds=300) <= state["9slow"].next_attempt_at <= after + timedelta(seconds=300)
    assert state["400"].last_error.startswith("HTTP 400 Bad Request: invalid_token for …")
    assert ("timed out" in state["9slow"].last_error and state["500"].last_error
            == "HTTP 500 Internal Server Error: oops")
    assert not all_rows(db, Bounce) and not all_rows(db, Suppression)  # a webhook's refusal is not a bounce
    assert SECRET_PART not in json.dumps([d.last_error for d in rows.values()])
    # Not due yet: nothing is posted. Once due, the retried ones go out; the failed one never again.
    n = len(server.requests)
    assert sender.send(db, settings).sent == 0 and len(server.requests) == n
    done = sender.send(db, settings, now=later + timedelta(minutes=1))
    assert (done.sent, done.failed) == (4, 0)
    counts = {name: len(server.hits(hook_path("slack", name))) for name in faults}
    assert counts == {"T429": 2, "T503": 2, "T500": 2, "T400": 1, "T9slow": 2}
    assert {d.email: d.status for d in all_rows(db, Delivery)} == {
        **{rows[by_name[n[:4]]].email: S.SENT for n in faults if n != "T400"}, by_name["T400"]: S.FAILED}


def test_a_server_that_keeps_failing_is_failed_after_max_attempts(db, settings_for, tmp_path, server):
    settings = webhook_settings(settings_for, db, tmp_path, max_attempts=2, retry_backoff=0.0)
    server.add(hook_path("discord"), Reply(status=502, body=b"bad gateway"))
    add_hook(db, settings, server, "discord")
    plan_editions(db, settings, add_papers(db, 1))
    first, second = sender.send(db, settings), sender.send(db, settings)
    assert (first.retried, second.failed) == (1, 1)
    d, = all_rows(db, Delivery)
    assert (d.status, d.attempts) == (S.FAILED, 2) and len(server.hits(hook_path("discord"))) == 2


def test_an_unreadable_sealed_url_fails_the_delivery_in_one_line(db, settings_for, tmp_path, server,
                                                                 monkeypatch):
    settings = webhook_settings(settings_for, db, tmp_path)
    add_hook(db, settings, server, "slack")
    plan_editions(db, settings, add_papers(db, 1))
    monkeypatch.setenv("DIGEST_SECRET", "a-rotated-secret-" + "y" * 32)
    report = sender.send(db, settings)
    d, = all_rows(db, Delivery)
    assert report.failed == 1 and d.status == S.FAILED and "signing secret" in d.last_error
    assert not server.requests


def test_send_in_processes_adds_up_the_transports(db, settings_for, tmp_path, server):
    settings = webhook_settings(settings_for, db, tmp_path)
    for i in range(4):
        server.add(hook_path("generic", f"T{i}"), Reply(status=200))
        add_hook(db, settings, server, "generic", f"T{i}")
    plan_editions(db, settings, add_papers(db, 1))
    report = sender.send(db, settings, workers=2)
    assert report.sent == 4 and report.by_transport == {"webhook-generic": {"sent": 4}}
    assert len([r for r in server.requests if r.method == "POST"]) == 4


# --------------------------------------------------------------------------- CLI, and the secret


def run(runner, cfg, *args):
    return runner.invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)


def config_file(tmp_path, db_url, **mail) -> Path:
    cfg = tmp_path / "config.toml"
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in mail.items())
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[web]\nbase_url = "{BASE}"\n'
                   f'[digest]\nranker = "lexical"\n'
                   f'[mail]\ntransport = "outbox"\noutbox_dir = "{tmp_path / "outbox"}"\n'
                   f'from_address = "{FROM}"\nlease_seconds = 0.5\n{extra}')
    return cfg


def test_the_url_is_never_printed_logged_or_stored_in_clear(db, db_url, tmp_path, server, caplog):
    caplog.set_level(logging.DEBUG)
    cfg = config_file(tmp_path, db_url)
    url = server.url + hook_path("slack")
    server.add(hook_path("slack"), [Reply(status=500, body=f"error at {url}"), Reply(status=200, body=b"ok")])
    add_papers(db, 3)
    runner = CliRunner()
    out = []
    added = run(runner, cfg, "-vv", "subscribers", "add", "--webhook", url, "--kind", "slack",
                "--topic", "large language models", "--name", "ML team")
    assert added.exit_code == 0, added.output
    ident = identity("slack", url)
    shown = f"{server.url}/slack/services/T000…"
    assert added.output.strip() == f"added {ident} {shown} (1 topics, daily at 08:00 UTC)"
    again = runner.invoke(cli,
                          ["--config", str(cfg), "subscribers", "add", "--webhook", "-", "--kind", "slack"],
                          input=url + "\n")  # from standard input: out of the shell history and `ps`
    assert (again.exit_code == 1 and again.output.strip()
            == f"Error: {shown} is already subscribed, as {ident}")
    for args in (("subscribers", "list"), ("subscribers", "list", "--json"), ("subscribers", "show", ident),
                 ("subscribers", "show", url, "--json"), ("-vv", "send"), ("-vv", "send", "--json"),
                 ("status",), ("status", "--json"), ("subscribers", "export")):
        result = run(runner, cfg, *args)
        out.append(result.output)
    listed = out[0].splitlines()[0]
    assert listed.startswith(ident) and listed.endswith(f"[{shown}]")
    assert json.loads(out[1])[0]["webhook"] == shown and json.loads(out[3])["channel"] == "slack"
    assert "retried 1" in out[4] and "by transport: webhook-slack retried 1" in out[4]
    assert posts(server, hook_path("slack"))  # it was sent, so its URL went through httpx's request log
    assert any("HTTP Request: POST" in r.getMessage() for r in caplog.records)
    everything = "\n".join([added.output, again.output, *out, caplog.text,
                            *(r.getMessage() for r in caplog.records)])
    assert SECRET_PART not in everything and "s3cr3t" not in everything
    with db.session() as s:
        dump = json.dumps([list(r) for r in s.execute(text("SELECT * FROM subscribers"))], default=str)
        dump += json.dumps([list(r) for r in s.execute(text("SELECT * FROM deliveries"))], default=str)
    assert SECRET_PART not in dump and "s3cr3t" not in dump
    removed = runner.invoke(cli, ["--config", str(cfg), "subscribers", "remove", url, "--yes"])
    assert removed.output.strip() == f"removed {ident} {shown}" and SECRET_PART not in removed.output


def test_cli_refuses_bad_webhook_input_in_one_line(db, db_url, tmp_path):
    cfg = config_file(tmp_path, db_url)
    runner = CliRunner()
    cases = [
        (("subscribers", "add"), 2, "give an EMAIL address or --webhook URL"),
        (("subscribers", "add", "ada@example.org", "--webhook", "https://x.example/h/abcdef", "--kind",
          "slack"),
         2, "give an EMAIL address or --webhook URL"),
        (("subscribers", "add", "--webhook", "https://x.example/h/abcdef"), 2,
         "--webhook and --kind go together"),
        (("subscribers", "add", "--webhook", "https://x.example/h/abcdef", "--kind", "teams"), 2,
         "'teams' is not one of"),
        (("subscribers", "add", "--webhook", "http://hooks.example.org/services/T1/" + SECRET_PART, "--kind",
          "slack"), 1, "must use https"),
    ]
    for args, code, says in cases:
        result = run(runner, cfg, *args)
        assert result.exit_code == code and says in result.output, result.output
        assert SECRET_PART not in result.output and "Traceback" not in result.output
    # the email path is as it was
    assert run(runner, cfg, "subscribers", "add", "ada@example.org").output.strip() == \
        "added ada@example.org (0 topics, daily at 08:00 UTC)"
    assert "email: ada@example.org" in run(runner, cfg, "subscribers", "show", "ada@example.org").output
    assert run(runner, cfg, "subscribers", "show", "slack:0123456789ab").output.strip() == \
        "Error: no subscriber slack:0123456789ab"


# ------------------------------------------------------------------------------ a crash mid-post

SENDER = """
import json, sys
from digest import config
from digest.delivery import sender
from digest.store.db import Database
settings = config.load(sys.argv[1])
r = sender.send(Database(settings.database.url), settings)
print(json.dumps({"sent": r.sent, "failed": r.failed, "errors": r.errors}))
"""


def test_killed_after_the_post_was_taken_before_the_ledger_write(db, db_url, tmp_path, server):
    """The server takes the third post, then SIGKILLs the sender before answering: that delivery was
    posted but the ledger still says `sending`. Once the lease runs out the next sender posts it again
    (the one duplicate a crash can cause, with the same Idempotency-Key); nothing else repeats."""
    cfg = config_file(tmp_path, db_url)
    from digest import config as config_mod
    settings = config_mod.load(cfg)
    n = 5
    for i in range(n):
        server.add(hook_path("generic", f"T{i}"), Reply(status=200, body=b"ok"))
        add_hook(db, settings, server, "generic", f"T{i}")
    plan_editions(db, settings, add_papers(db, 2))
    victim: dict = {}

    def kill_on_third(seen: Seen) -> None:
        if seen.method == "POST" and len([r for r in server.requests if r.method
                                          == "POST"]) == 3 and "pid" in victim:
            os.kill(victim.pop("pid"), signal.SIGKILL)
            victim["killed_at"] = seen.path

    server.on_request = kill_on_third
    with open(tmp_path / "senders.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", SENDER, str(cfg)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=log)
        victim["pid"] = proc.pid
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL and "killed_at" in victim
        killed = {d.email: d.status for d in all_rows(db, Delivery)}
        assert list(killed.values()).count(S.SENDING) >= 1
        for _ in range(20):  # the next senders resume once the dead one's lease (0.5 s) has run out
            final = subprocess.run([sys.executable, "-c", SENDER, str(cfg)], cwd=ROOT, capture_output=True,
                                   timeout=120)
            assert final.returncode == 0, final.stderr.decode()[-2000:]
            if all(d.status == S.SENT for d in all_rows(db, Delivery)):
                break
            time.sleep(0.2)
    rows = all_rows(db, Delivery)
    assert [d.status for d in rows] == [S.SENT] * n
    per_path = {f"T{i}": server.hits(hook_path("generic", f"T{i}")) for i in range(n)}
    twice = {k: v for k, v in per_path.items() if len(v) > 1}
    assert set(twice) == {victim["killed_at"].split("/")[3]} and len(twice.popitem()[1]) == 2
    assert sum(len(v) for v in per_path.values()) == n + 1  # at most one duplicate per crash
    dup = server.hits(victim["killed_at"])
    assert dup[0].headers["idempotency-key"] == dup[1].headers["idempotency-key"] != ""


@pytest.mark.sqlite_only
def test_preview_and_send_one_channel_by_its_identity(db, db_url, tmp_path, server):
    cfg = config_file(tmp_path, db_url)
    server.add(hook_path("discord"), Reply(status=204))
    server.add(hook_path("slack"), Reply(status=200, body=b"ok"))
    add_papers(db, 3)
    runner = CliRunner()
    idents = {}
    for kind in ("discord", "slack"):
        run(runner, cfg, "subscribers", "add", "--webhook", server.url + hook_path(kind), "--kind", kind,
            "--topic", "large language models")
        idents[kind] = identity(kind, server.url + hook_path(kind))
    preview = run(runner, cfg, "preview", "--subscriber", idents["discord"], "--format", "json")
    body = json.loads(preview.output)
    assert discord_problem(body) is None and body["embeds"][1]["title"].startswith("1. Large language models")
    assert not server.requests  # a preview posts nothing
    wrong = run(runner, cfg, "preview", "--subscriber", idents["discord"], "--format", "eml")
    assert wrong.exit_code == 2 and "--format json is for a team channel" in wrong.output
    sent = run(runner, cfg, "send", "--subscriber", idents["discord"], "--json")
    assert json.loads(sent.output)["by_transport"] == {"webhook-discord": {"sent": 1}}
    assert len(posts(server, hook_path("discord"))) == 1 and not posts(server, hook_path("slack"))
