"""Issue 26, item 2: a real digest, as sent, passes the mail clients' rules and a second spam filter.

- caniemail (npm `caniemail`, the data of caniemail.com) on the digest's HTML part, for Gmail (web, Android,
  iOS), Outlook (Windows, web) and Apple Mail (macOS, iOS): every feature a client does not support at all
  is in `FALLBACKS` below, with what that client shows instead, and the HTML carries the fallback.
- rspamd (Debian `rspamd`), run here on a loopback port with its stock rules, scores the DKIM-signed digest
  with `rspamc check` as a receiving server would see it (envelope, HELO, a sending IP): no action and no
  symbol above 1.0. Being offline, rspamd asks a DNS stub on loopback (tests/dns_stub.py): it knows the
  sender's SPF, DKIM key, DMARC policy, MX and HELO name, and answers "no such name" to everything else,
  so every block list reads "not listed". SpamAssassin has its own test (tests/test_spam.py).

Each check also fails a digest broken on purpose: an unsupported CSS property added to the template, and a
message without its Message-ID. Figures go to test-artifacts/clients/ (the README's).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from digest.config import from_dict
from digest.delivery.sender import send
from digest.mail.sink import SmtpSink, free_port
from digest.records import utcnow
from digest.render import TEMPLATE_DIR, compile_mjml
from digest.sources.ingest import ingest
from digest.store.db import Database
from digest.subscriptions import signup, subscribers
from digest.usecases.planning import plan
from tests.dns_stub import DnsStub, txt

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / ".ci" / "node"
CANIEMAIL = NODE / "caniemail-check.mjs"
ARTIFACTS = ROOT / "test-artifacts" / "clients"
CI = bool(os.environ.get("CI"))
CLIENTS = (
    "gmail.desktop-webmail",
    "gmail.android",
    "gmail.ios",
    "outlook.windows",
    "outlook.outlook-com",
    "apple-mail.macos",
    "apple-mail.ios",
)
SENDER_IP, HELO = "192.0.2.25", "mail.example.org"  # TEST-NET-1: a sending server of the sender's own
MAX_SYMBOL = 1.0

pytestmark = pytest.mark.sqlite_only


@dataclass(frozen=True)
class Fallback:
    """A feature some clients ignore, what they show instead, and a mark of it the HTML must carry."""

    clients: tuple[str, ...]
    instead: str
    proof: str  # a regular expression the digest's HTML matches


# Everything the digest uses that one of CLIENTS does not support at all. A feature found and not listed
# here fails the check; so does a listed one whose proof is missing.
FALLBACKS = {
    "@media": Fallback(
        ("outlook.windows",),
        "MJML's fixed 640 px tables inside [if mso] comments: the "
        "desktop layout (the media queries only widen columns on larger screens)",
        r'<!--\[if mso \| IE\]>\s*<table[^>]*width="640"',
    ),
    "Chaining selectors": Fallback(
        ("outlook.windows",),
        "the column's inline width:100% (the rule is MJML's "
        "Thunderbird fix, .moz-text-html .mj-column-per-100)",
        r'class="mj-column-per-100[^"]*" style="[^"]*width:100%',
    ),
    "outline": Fallback(
        ("outlook.windows",),
        "nothing to remove: the reset's img{outline:none}; Outlook "
        "draws no outline on images, and a digest has none",
        r"img \{[^}]*outline:none",
    ),
    "word-spacing": Fallback(
        ("outlook.windows",),
        "normal spacing, which is what MJML's body reset word-spacing:normal asks for",
        r"<body[^>]*word-spacing:normal",
    ),
    "border-radius": Fallback(
        ("outlook.windows",),
        "square corners: the digest's badges (upvotes, comments, code), the notice's button",
        r"\.badge \{[^}]*border-radius|<a href=[^>]*style="
        r'"display:inline-block;[^"]*border-radius',
    ),
    "white-space": Fallback(
        ("outlook.windows",), "a long badge may wrap inside", r"\.badge \{[^}]*white-space"
    ),
    "opacity": Fallback(
        ("outlook.windows",),
        "the preheader is hidden by mso-hide:all instead",
        r'<div style="display:none;[^"]*opacity:0;[^"]*mso-hide:all',
    ),
    "overflow": Fallback(
        ("outlook.windows",),
        "the preheader is hidden by mso-hide:all instead",
        r'<div style="display:none;[^"]*overflow:hidden;[^"]*mso-hide:all',
    ),
    "max-height property": Fallback(
        ("outlook.windows",),
        "the preheader is hidden by mso-hide:all instead",
        r'<div style="display:none;[^"]*max-height:0px;[^"]*mso-hide:all',
    ),
}

needs_node = pytest.mark.skipif(
    not (NODE / "node_modules" / "caniemail").exists() and not CI,
    reason="needs caniemail in .ci/node (`make client-tools`, which .ci/run runs)",
)
needs_rspamd = pytest.mark.skipif(
    not (shutil.which("rspamd") and shutil.which("rspamc")) and not CI,
    reason="needs Debian's rspamd (.ci/run installs it)",
)


# ------------------------------------------------------------------------------ a real digest


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory) -> tuple[str, str]:
    """A fresh 2048-bit RSA key (as tests/test_dkim.py makes one) and its DNS record."""
    d = tmp_path_factory.mktemp("dkim")
    key = d / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    pem = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout"], check=True, capture_output=True
    ).stdout
    public = "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))
    return str(key), f"v=DKIM1; k=rsa; p={public}"


@pytest.fixture(scope="module")
def sent_digest(tmp_path_factory, dkim_key) -> bytes:
    """A digest as `digest send` puts it on the wire: the sample listings, one subscriber, DKIM-signed."""
    tmp = tmp_path_factory.mktemp("digest")
    db = Database(f"sqlite:///{tmp / 'digest.store.db'}")
    db.init()
    try:
        with pytest.MonkeyPatch.context() as mp, SmtpSink() as sink:
            mp.setenv("DIGEST_SECRET", "test-secret-" + "x" * 32)
            settings = from_dict(
                {
                    "database": {"url": db.url},
                    "digest": {"ranker": "lexical"},
                    "web": {"base_url": "https://digest.example.org", "secret_file": str(tmp / "secret")},
                    "mail": {
                        "transport": "smtp",
                        "from_address": "Trending Papers <digest@example.org>",
                        "list_id": "Trending papers <digest.example.org>",
                        "unsubscribe_mailto": "unsubscribe@example.org",
                        "dkim_key_file": dkim_key[0],
                        "dkim_selector": "digest2026",
                        "smtp": {"host": sink.host, "port": sink.port},
                    },
                }
            )
            ingest(db, settings)  # the bundled sample listings
            subscribers.add(
                db, "ada@example.org", name="Ada Lovelace", topics=["large language models", "reasoning"]
            )
            assert plan(db, settings).planned == 1
            assert send(db, settings).sent == 1
            raw = sink.messages[0].data
    finally:
        db.dispose()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "digest.eml").write_bytes(raw)
    return raw


def html_of(raw: bytes) -> str:
    return email.message_from_bytes(raw, policy=email.policy.default).get_body(("html",)).get_content()


# ------------------------------------------------------------------------------------ caniemail


def caniemail(html: str) -> dict:
    done = subprocess.run(
        ["node", str(CANIEMAIL), *CLIENTS], input=html, capture_output=True, text=True, cwd=NODE, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def unsupported(html: str, found: dict) -> list[str]:
    """What fails the check: a feature a client does not support, with no fallback listed or present."""
    problems = []
    for e in found["errors"]:
        fb = FALLBACKS.get(e["feature"])
        if fb is None or e["client"] not in fb.clients:
            problems.append(
                f"{e['client']}: {e['feature']} is not supported, and has no fallback "
                f"({' '.join(e['notes'])}) {e['where'][:120]}"
            )
        elif not re.search(fb.proof, html):
            problems.append(f"{e['client']}: {e['feature']}: the fallback ({fb.instead}) is not in the HTML")
    return problems


@needs_node
def test_the_digest_html_passes_caniemail_for_the_big_clients(sent_digest):
    html = html_of(sent_digest)
    found = caniemail(html)
    problems = unsupported(html, found)
    by_client = {c: sorted({e["feature"] for e in found["errors"] if e["client"] == c}) for c in CLIENTS}
    partial = {c: len({e["feature"] for e in found["warnings"] if e["client"] == c}) for c in CLIENTS}
    (ARTIFACTS / "caniemail.json").write_text(
        json.dumps({"unsupported": by_client, "partial": partial, "problems": problems}, indent=1)
    )
    for c in CLIENTS:
        print(f"{c:22} unsupported: {', '.join(by_client[c]) or 'none'}; partly supported: {partial[c]}")
    assert not problems, "\n".join(problems)
    # the checks ran on the real thing: Gmail and Apple Mail need no fallback at all
    assert not [e for e in found["errors"] if not e["client"].startswith("outlook.windows")], found["errors"]
    assert found["warnings"], "caniemail reported nothing at all: is it reading the HTML?"


@needs_node
def test_an_unsupported_css_property_fails_the_check():
    """The digest's template with one more rule (text-shadow, which Gmail drops), compiled as the renderer
    compiles it: the check names the property and the clients."""
    source = (TEMPLATE_DIR / "digest.mjml").read_text(encoding="utf-8")
    broken = source.replace("</mj-style>", ".title a { text-shadow: 0 1px 0 #ffffff; }\n    </mj-style>", 1)
    assert broken != source
    intact_html, broken_html = compile_mjml(source), compile_mjml(broken)
    assert not unsupported(intact_html, caniemail(intact_html))
    problems = unsupported(broken_html, caniemail(broken_html))
    assert any(p.startswith("gmail.desktop-webmail: text-shadow is not supported") for p in problems), (
        problems
    )
    assert any(p.startswith("gmail.ios: text-shadow") for p in problems), problems


@needs_node
def test_the_confirmation_and_manage_emails_pass_caniemail(settings_for, tmp_path):
    """The other mail a subscriber gets (issue 6's notices), both kinds, as `notice_message` builds them."""
    settings = settings_for(
        f"sqlite:///{tmp_path / 'digest.store.db'}",
        mail={"from_address": "Trending Papers <digest@example.org>"},
    )
    for kind in ("confirm", "manage"):
        raw = signup.notice_message(
            settings,
            "ada@example.org",
            kind,
            "https://digest.example.org/confirm/t",
            ["diffusion models"],
            utcnow(),
        )
        html = html_of(raw)
        found = caniemail(html)
        assert not unsupported(html, found), (kind, unsupported(html, found))
        assert {(e["client"], e["feature"]) for e in found["errors"]} <= {
            ("outlook.windows", "border-radius")
        }


# ------------------------------------------------------------------------------------- rspamd


@dataclass
class Rspamd:
    address: str  # host:port of the normal worker

    def check(self, raw: bytes, rcpt: str = "ada@example.org") -> dict:
        """`rspamc check` as a receiving server asks it: the sending IP, HELO, envelope sender and
        recipient."""
        done = subprocess.run(
            [
                "rspamc",
                "-h",
                self.address,
                "-j",
                "--ip",
                SENDER_IP,
                "--helo",
                HELO,
                "--hostname",
                HELO,
                "--from",
                "digest@example.org",
                "--rcpt",
                rcpt,
                "check",
            ],
            input=raw,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        return json.loads(done.stdout)


def rspamd_config(conf: Path, port: int, dns_port: int) -> None:
    """A local configuration over Debian's stock one: only the scanning worker, on a loopback port, asking
    the DNS stub; regular expressions without Hyperscan (it compiles for minutes at first start);
    no fuzzy hashes (rspamd.com's servers are out of reach). No Redis is configured, so no Bayes."""
    (conf / "override.d").mkdir(parents=True)
    (conf / "local.d").mkdir()
    (conf / "override.d" / "worker-normal.inc").write_text(f'bind_socket = "127.0.0.1:{port}";\ncount = 1;\n')
    (conf / "override.d" / "worker-controller.inc").write_text("enabled = false;\n")
    (conf / "override.d" / "worker-proxy.inc").write_text("enabled = false;\n")
    (conf / "override.d" / "logging.inc").write_text(
        f'type = "file";\nfilename = "{conf}/rspamd.log";\nlevel = "notice";\n'
    )
    (conf / "local.d" / "options.inc").write_text(
        f'disable_hyperscan = true;\ndns {{\n  nameserver = ["127.0.0.1:{dns_port}"];\n  timeout = 1s;\n'
        "  retransmits = 2;\n}\n"
    )
    (conf / "local.d" / "fuzzy_check.conf").write_text("enabled = false;\n")


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory, dkim_key):
    tmp = tmp_path_factory.mktemp("rspamd")
    records = {
        (HELO, "A"): [SENDER_IP],
        (".".join(reversed(SENDER_IP.split("."))) + ".in-addr.arpa", "PTR"): [HELO + "."],
        ("example.org", "TXT"): [txt(f"v=spf1 ip4:{SENDER_IP} -all")],
        ("example.org", "MX"): [f"10 {HELO}."],  # a sender's domain takes mail (rspamd's hfilter asks)
        ("example.org", "A"): [SENDER_IP],
        ("_dmarc.example.org", "TXT"): [txt("v=DMARC1; p=reject")],
        ("digest2026._domainkey.example.org", "TXT"): [txt(dkim_key[1])],
    }
    port = free_port()
    with DnsStub(records) as dns:
        conf = tmp / "conf"
        rspamd_config(conf, port, dns.port)
        log = (tmp / "rspamd.out").open("w")
        proc = subprocess.Popen(
            [
                "rspamd",
                "-f",
                "-i",
                "-c",
                "/etc/rspamd/rspamd.conf",
                f"--var=LOCAL_CONFDIR={conf}",
                f"--var=DBDIR={tmp}",
                f"--var=RUNDIR={tmp}",
                f"--var=LOGDIR={tmp}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            end = time.monotonic() + 180
            while True:
                assert proc.poll() is None, (tmp / "rspamd.out").read_text() + (
                    conf / "rspamd.log"
                ).read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < end, "rspamd did not start within 180 s"
                    time.sleep(0.3)
            yield Rspamd(f"127.0.0.1:{port}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def symbols(result: dict) -> dict[str, float]:
    return {name: s["score"] for name, s in result["symbols"].items()}


def too_high(result: dict) -> list[str]:
    """What fails the check: an action other than none, a symbol above 1.0."""
    found = [f"{name} {score:+.2f}" for name, score in symbols(result).items() if score > MAX_SYMBOL]
    if result["action"] != "no action":
        found.append(f"action: {result['action']} ({result['score']:.2f})")
    return found


@needs_rspamd
def test_rspamd_scores_a_real_digest_clean(rspamd, sent_digest):
    result = rspamd.check(sent_digest)
    got = symbols(result)
    listed = ", ".join(f"{n} {s:+.2f}" for n, s in sorted(got.items(), key=lambda kv: -abs(kv[1])))
    print(f"rspamd: {result['score']:.2f} / {result['required_score']:.0f}, {result['action']}; {listed}")
    (ARTIFACTS / "rspamd.json").write_text(
        json.dumps(
            {"score": result["score"], "action": result["action"], "symbols": got}, indent=1, sort_keys=True
        )
    )
    assert not too_high(result), listed
    # it judged the message as the world would: signed, sent from where SPF says, DMARC aligned
    assert {"R_DKIM_ALLOW", "R_SPF_ALLOW", "DMARC_POLICY_ALLOW"} <= set(got), listed
    assert "MIME_GOOD" in got and not any(n.startswith("MISSING_") for n in got), listed


@needs_rspamd
def test_a_digest_without_message_id_fails_rspamd(rspamd, sent_digest):
    """The same digest with its Message-ID header cut out (after signing, as a broken relay might): rspamd's
    MISSING_MID is above the bar."""
    head, body = sent_digest.split(b"\r\n\r\n", 1)
    lines = re.split(rb"\r\n(?![ \t])", head)
    broken = (
        b"\r\n".join(line for line in lines if not line.lower().startswith(b"message-id:"))
        + b"\r\n\r\n"
        + body
    )
    assert broken != sent_digest
    result = rspamd.check(broken)
    assert any(p.startswith("MISSING_MID") for p in too_high(result)), symbols(result)
