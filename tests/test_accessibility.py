"""Issue 26, item 1: every page a subscriber sees passes an accessibility engine, at phone and desktop widths.

A subscriber's whole journey in headless Chromium against `digest serve` and a real SMTP server (the world
of test_e2e_browser): subscribe (and its error), check your inbox, confirm, confirmed, preferences with each
of its blocks (saved, errors, seeded papers, quiet days, pause, delivery status and feed, feedback, recent
digests) and paused and unsubscribed, feedback (ask and done), the archived digest, unsubscribe and its
confirmation, and the error pages (bad link, 403, 404). On each page:

- axe-core (npm `axe-core`, injected into the page through WebDriver) at 390 px (phone) and 1280 px
  (desktop): no serious or critical violation;
- Lighthouse's accessibility category (npm `lighthouse` 12.2.3, snapshot mode, connected to the same
  Chromium, so pages reached by a POST are scored too): at least 95, at phone width (and at desktop
  width on the preferences page with every block).

Everything found goes to test-artifacts/a11y/report.json (the README's figures). The last test breaks a
page on purpose (a form field loses its label) and sees both engines fail it.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.test_e2e_browser import PHONE, Browser, pytestmark, run, serving, text_of, wait_for_mail

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / ".ci" / "node"
AXE = NODE / "node_modules" / "axe-core" / "axe.min.js"
LIGHTHOUSE = NODE / "lighthouse-snapshot.mjs"
REPORT = ROOT / "test-artifacts" / "a11y" / "report.json"
DESKTOP = (1280, 900)
MIN_SCORE = 95
BLOCKING = ("serious", "critical")  # axe impacts that fail a page

pytestmark = [
    *pytestmark,
    pytest.mark.skipif(
        not (AXE.exists() and (NODE / "node_modules" / "lighthouse").exists()) and not os.environ.get("CI"),
        reason="needs axe-core and lighthouse in .ci/node (`make client-tools`, which .ci/run runs)",
    ),
]

MY_PAPERS = r"""
@misc{me2024a,
  title = {Reward Models for Aligning Language Models with Human Preferences},
  author = {Lovelace, Ada},
  abstract = {We train a reward model on human preference pairs and use it for RLHF of a language model.}
}
"""


@dataclass
class PageAudit:
    name: str
    url: str
    axe: dict[str, list[dict]] = field(default_factory=dict)  # width name -> violations
    lighthouse: dict[str, dict] = field(default_factory=dict)  # width name -> {"score", "failed"}

    def problems(self) -> list[str]:
        """One line per thing that fails the page: a serious or critical axe violation, a low score."""
        found = [
            f"{self.name} ({width}): axe {v['impact']} {v['id']}: {v['help']} at {v['nodes'][:2]}"
            for width, violations in self.axe.items()
            for v in violations
            if v["impact"] in BLOCKING
        ]
        found += [
            f"{self.name} ({width}): Lighthouse {lh.get('score')} < {MIN_SCORE}: "
            f"{[(a['id'], a['nodes'][:2]) for a in lh.get('failed', [])] or lh.get('error')}"
            for width, lh in self.lighthouse.items()
            if not lh.get("score", 0) >= MIN_SCORE
        ]
        return found


class Lighthouse:
    """One Node process running Lighthouse snapshots in the browser the test drives."""

    TIMEOUT = 180  # seconds for one page, on a busy machine

    def __init__(self, browser: Browser):
        address = browser.driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        self.proc = subprocess.Popen(
            ["node", str(LIGHTHOUSE), address],
            cwd=NODE,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def score(self, url: str, form_factor: str) -> dict:
        self.proc.stdin.write(json.dumps({"url": url, "formFactor": form_factor}) + "\n")
        self.proc.stdin.flush()
        if not select.select([self.proc.stdout], [], [], self.TIMEOUT)[0]:
            self.proc.kill()  # a late answer must not be taken for the next page's
            return {"error": f"no answer from Lighthouse within {self.TIMEOUT} s"}
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"error": f"lighthouse exited {self.proc.poll()}"}

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def axe(b: Browser) -> list[dict]:
    """axe-core's violations on the page as it is now (all rules, best practices included)."""
    if not b.driver.execute_script("return typeof window.axe === 'object'"):
        b.driver.execute_script(AXE.read_text(encoding="utf-8"))
    return b.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']}).then(
            r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                              nodes: v.nodes.map(n => n.html)}))),
            e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));""")


class Auditor:
    """Audits the page the browser shows, at both widths, and keeps what it found."""

    def __init__(self, b: Browser, lighthouse: Lighthouse):
        self.b, self.lh = b, lighthouse
        self.pages: list[PageAudit] = []
        self.seconds = {"axe": 0.0, "lighthouse": 0.0}

    def __call__(self, name: str, lighthouse_desktop: bool = False) -> PageAudit:
        """axe at both widths; Lighthouse (whose accessibility audits are axe's, weighted) on the phone,
        and on the desktop too when asked (a run takes seconds: the suite keeps it to the page whose layout
        changes most with the width)."""
        b = self.b
        # What a click would show is checked too: every <details> open.
        b.driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        audit = PageAudit(name, b.driver.current_url)
        for width_name, (width, height), mobile in (("phone", PHONE, True), ("desktop", DESKTOP, False)):
            b.size(width, height, mobile)
            t0 = time.monotonic()
            audit.axe[width_name] = axe(b)
            t1 = time.monotonic()
            if mobile or lighthouse_desktop:
                audit.lighthouse[width_name] = self.lh.score(
                    b.driver.current_url, "mobile" if mobile else "desktop"
                )
            self.seconds["axe"] += t1 - t0
            self.seconds["lighthouse"] += time.monotonic() - t1
        b.size(*PHONE, mobile=True)
        self.pages.append(audit)
        return audit


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """`digest serve` with the sample listings, a browser, and Lighthouse attached to it."""
    tmp = tmp_path_factory.mktemp("a11y")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGEST_SECRET", "test-secret-" + "x" * 32)  # as conftest's (function-scoped) fixture does
        with serving(tmp, '[digest]\nranker = "lexical"\n') as (base, env, sink, _):
            b = Browser(tmp / "chrome")
            lighthouse = Lighthouse(b)
            try:
                yield base, env, sink, tmp, b, Auditor(b, lighthouse)
            finally:
                lighthouse.close()
                b.quit()


def test_every_page_a_subscriber_sees_passes_axe_and_lighthouse(world):
    base, env, sink, tmp, b, audit = world

    b.driver.get(f"{base}/")
    audit("subscribe")
    b.find("input[name=email]").send_keys("ada@example.org")
    b.find("label.chip").click()
    b.find("textarea[name=topics]").send_keys("reinforcement learning")
    tz = b.find("input[name=timezone]")
    tz.clear()
    tz.send_keys("Mars/Olympus_Mons")
    b.click_and_wait("form.stack button[type=submit]")
    assert "Olympus" in b.text()  # refused, with the reason on the page
    audit("subscribe, refused")
    tz = b.find("input[name=timezone]")
    tz.clear()
    tz.send_keys("Europe/Paris")
    b.click_and_wait("form.stack button[type=submit]")
    assert "Check your inbox" in b.text()
    audit("check your inbox")

    (confirmation,) = wait_for_mail(sink, 1)
    b.driver.get(re.search(rf"{re.escape(base)}/confirm/\S+", text_of(confirmation)).group(0))
    audit("confirm")
    b.click_and_wait("button[type=submit]")
    assert "You are subscribed" in b.text()
    audit("confirmed")
    b.click_and_wait("a.button")
    prefs = b.driver.current_url

    # Fill every block of the preferences page: seeded papers, a digest sent, feedback both ways.
    bib = tmp / "mine.bib"
    bib.write_text(MY_PAPERS)
    b.find("input[name=seed_file]").send_keys(str(bib))
    b.click_and_wait("form[action$='/seed'] button[type=submit]")
    assert "Your papers were added" in b.text()
    assert "sent 1" in run(env, "send")
    body = text_of(wait_for_mail(sink, 2)[1])
    more = re.findall(r"More like this: (\S+)", body)
    less = re.findall(r"Less like this: (\S+)", body)
    assert len(more) >= 2 and len(less) >= 2, body
    b.driver.get(more[0])
    audit("feedback")
    b.click_and_wait("form.stack button[type=submit]")
    assert "Thanks, noted" in b.text()
    audit("feedback, done")
    b.driver.get(less[1])
    b.click_and_wait("form.stack button[type=submit]")
    b.driver.get(re.search(rf"{re.escape(base)}/archive/\S+", body).group(0))
    audit("archived digest")

    b.driver.get(prefs)
    b.find("input[name=min_papers]").send_keys("3")
    b.click_and_wait("form.cadence button[type=submit]")
    text = b.text()
    assert (
        "Saved." in text and "Your papers (" in text and "More like this" in text and "Less like this" in text
    )
    assert "Delivery status" in text and "private Atom feed" in text and "View this digest" in text
    audit("preferences, every block", lighthouse_desktop=True)
    tz = b.find("form.stack input[name=timezone]")
    tz.clear()
    tz.send_keys("Mars/Olympus_Mons")
    b.click_and_wait("form.stack button[type=submit]")
    assert "Olympus" in b.text()
    audit("preferences, refused")
    b.driver.get(prefs)
    b.click_and_wait("form.pause button[type=submit]")
    assert "Paused until" in b.text()
    audit("preferences, paused")

    unsubscribe = re.search(r"Unsubscribe: (\S+)", body).group(1)
    b.driver.get(unsubscribe)
    audit("unsubscribe")
    b.click_and_wait("form.stack button[type=submit]")
    assert "You are unsubscribed" in b.text()
    audit("unsubscribed")
    b.driver.get(prefs)
    assert "You are unsubscribed" in b.text()
    audit("preferences, unsubscribed")

    b.driver.get(f"{base}/confirm/not-a-token")
    assert "This link is not valid" in b.text()
    audit("error: bad link")
    b.driver.get(f"{base}/no/such/page")
    assert "Page not found" in b.text()
    audit("error: 404")
    b.driver.get(f"{base}/")
    b.driver.delete_all_cookies()  # the form's CSRF cookie is gone: the post is refused
    b.find("input[name=email]").send_keys("bob@example.org")
    b.click_and_wait("form.stack button[type=submit]")
    assert "Forbidden" in b.text()
    audit("error: 403")

    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps([vars(p) for p in audit.pages], indent=1))
    for p in audit.pages:
        scores = ", ".join(f"{lh.get('score')} ({width})" for width, lh in p.lighthouse.items())
        print(f"{p.name:28} axe {sum(len(v) for v in p.axe.values())} violations, Lighthouse {scores}")
    print(f"time: axe {audit.seconds['axe']:.1f} s, Lighthouse {audit.seconds['lighthouse']:.1f} s")
    problems = [line for p in audit.pages for line in p.problems()]
    assert not problems, "\n".join(problems)
    assert len(audit.pages) == 17
    # Below serious, one known finding: the archived digest is the email's own HTML, whose MJML wrapper is
    # an article labelled with the subject (webmail screen readers announce the email by it); axe's
    # best-practice `region` counts that label as content outside the banner/main/contentinfo landmarks.
    lesser = {(p.name, v["id"]) for p in audit.pages for vs in p.axe.values() for v in vs}
    assert lesser <= {("archived digest", "region")}, lesser


def test_a_field_without_its_label_fails_both_engines(world):
    """The subscribe form with its email label removed (the input stays, nameless): axe reports a critical
    `label` violation and Lighthouse's score falls below the bar."""
    base, _env, _sink, _tmp, b, audit = world
    b.driver.get(f"{base}/")
    assert not audit("subscribe, intact").problems()
    b.driver.get(f"{base}/")
    b.driver.execute_script("""
        const label = document.querySelector('input[name=email]').closest('label');
        const input = label.querySelector('input');
        input.removeAttribute('placeholder');
        label.replaceWith(input);""")
    broken = audit("subscribe, email label removed")
    assert {v["id"] for v in broken.axe["phone"] if v["impact"] == "critical"} >= {"label"}
    assert "label" in {a["id"] for a in broken.lighthouse["phone"]["failed"]}
    assert broken.lighthouse["phone"]["score"] < MIN_SCORE, broken.lighthouse
    assert any("axe critical label" in line for line in broken.problems())
