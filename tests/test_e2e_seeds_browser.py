"""Seeding a profile and following an author on the preferences page, in headless Chromium, against
`digest serve` and a real SMTP server (the `served` world of test_e2e_browser): the digest that
`digest send` then delivers is made of papers like the seeds, and the followed author's paper first.
Screenshots go to test-artifacts/web/ beside the journey's."""

from __future__ import annotations

import re

import pytest

from digest.subscriptions import subscribers
from digest.subscriptions.links import links_for
from digest.usecases import setup
from tests.test_e2e_browser import ARTIFACTS, Browser, pytestmark, run, serving, text_of, wait_for_mail

__all__ = ["pytestmark"]  # the marks of the journey's test: slow, needs Chromium


@pytest.fixture
def served(tmp_path):
    """As the journey's `served`, ranking on words alone (this test is not about embeddings, and
    embedding the sample listings at ingest takes minutes on a busy machine)."""
    with serving(tmp_path, '[digest]\nranker = "lexical"\n') as world:
        yield world


MY_PAPERS = r"""
@misc{me2024a,
  title = {Reward Models for Aligning Language Models with Human Preferences},
  author = {Lovelace, Ada},
  abstract = {We train a reward model on human preference pairs and use it for RLHF of a language model.}
}
@misc{me2024b,
  title = {Off-Policy Reinforcement Learning from Human Feedback},
  author = {Lovelace, Ada and Babbage, Charles},
  abstract = {Reinforcement learning from human feedback with a learned reward model,
              asynchronous and off-policy.}
}
"""


def test_seed_and_follow_on_the_preferences_page(served):
    base, env, sink, tmp = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run(env, "subscribers", "add", "ada@example.org")  # no topic: a digest of trending papers, for now
    settings = setup.load_settings(env["DIGEST_CONFIG"])
    db, _ = setup.open_database(settings, "check")
    sid = subscribers.get(db, "ada@example.org").id
    bib = tmp / "mine.bib"
    bib.write_text(MY_PAPERS)
    b = Browser(tmp / "chrome")
    try:
        b.driver.get(links_for(settings).preferences(sid))
        b.find("textarea[name=authors]").send_keys("Z. Cheng")
        b.click_and_wait("form.stack button[type=submit]")
        assert "Saved" in b.text()
        b.find("input[name=seed_file]").send_keys(str(bib))
        b.click_and_wait("form[action$='/seed'] button[type=submit]")
        assert "Your papers were added" in b.text() and "Your papers (2)" in b.text()
        b.shot("09-preferences-seeded")
    finally:
        b.quit()
        db.dispose()
    out = run(env, "send")
    assert "sent 1" in out, out
    mail = wait_for_mail(sink, 1)[0]
    body = text_of(mail)
    assert "new papers for you" in mail.message["Subject"] or "new paper for you" in mail.message["Subject"]
    assert "Picked and ranked for papers like the ones you gave or liked and new work by Z. Cheng" in body
    whys = re.findall(r"^ {3}(By .+?, whom you follow|Similar to “.+?”, which you liked|"
                      r"Trending: [^\r\n]+)\r?$", body, re.M)
    assert whys and whys[0] == "By Zesen Cheng, whom you follow", body
    liked = ("Off-Policy Reinforcement Learning from Human Feedback",
             "Reward Models for Aligning Language Models with Human Preferences")
    assert any(f"Similar to “{title}”, which you liked" in whys for title in liked)
    assert not any(w.startswith("Trending") for w in whys), whys  # seeded: no longer a trending digest
