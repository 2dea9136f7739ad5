"""Topic weights: a reader says how much each topic matters ("diffusion models=3"), on the CLI, in a CSV
file and on the preferences page; the weight sets the topic's share of the digest's slots, and the
"why" line says so when it gave a pick its place."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from digest.cli import main
from digest.mail.sink import SmtpSink
from digest.ranking import rank
from digest.records import Paper, Profile
from digest.subscriptions import subscriber_csv, subscribers
from digest.subscriptions.links import links_for
from digest.subscriptions.profile import ProfileChange
from digest.subscriptions.rules import SubscriberError, clean_weighted_topics
from digest.usecases import setup
from digest.web.app import create_app
from tests.test_e2e_browser import ARTIFACTS, CHROME, DRIVER, Browser, run, serving, text_of, wait_for_mail

NOW = datetime(2024, 10, 25, 12, tzinfo=UTC)
FIELDS = ["weather forecasting", "molecule design", "audio restoration", "robot control", "video editing",
          "drug discovery", "speech synthesis", "protein folding", "climate models", "text generation",
          "image editing", "3D shapes"]
FILLER = ["Sparse attention for long documents", "Speech recognition with self-supervised pretraining",
          "Object detection under distribution shift", "Offline reinforcement learning with critics",
          "Graph neural networks for traffic", "Protein language models", "Optimizers for deep networks"]


def papers() -> list[Paper]:
    """Twelve papers on each of two topics; the privacy ones are upvoted far more (they rank first);
    no two score alike."""
    day = NOW - timedelta(days=1)
    out = [Paper(100 + i, f"Diffusion Models for {f.title()}", f"We apply diffusion models to {f}.",
                 upvotes=50 - i, published_at=day) for i, f in enumerate(FIELDS)]
    out += [Paper(200 + i, f"Differential Privacy for {f.title()}", f"We bring differential privacy to {f}.",
                  upvotes=900 - 10 * i, published_at=day) for i, f in enumerate(FIELDS)]
    out += [Paper(300 + i, t, f"{t}: a study.", upvotes=1, published_at=day) for i, t in enumerate(FILLER)]
    return out


def picks_of(weights: list[float], max_items: int = 8):
    profile = Profile(1, ["diffusion models", "differential privacy"], max_items=max_items, weights=weights)
    return rank(papers(), [profile], now=NOW)[1]


def shares(picks) -> tuple[int, int]:
    topics = [p.topic for p in picks]
    return topics.count("diffusion models"), topics.count("differential privacy")


@pytest.mark.parametrize("max_items,expected", [(8, (6, 2)), (12, (9, 3)), (4, (3, 1))])
def test_a_topic_weighted_3_gets_three_times_the_slots_of_one_weighted_1(max_items, expected):
    assert shares(picks_of([1.0, 1.0], max_items)) == (max_items // 2, max_items // 2)  # equal shares
    assert shares(picks_of([3.0, 1.0], max_items)) == expected
    assert shares(picks_of([1.0, 3.0], max_items))[::-1] == expected


def test_the_why_line_says_the_weight_when_it_gave_the_pick_its_place():
    picks = picks_of([3.0, 1.0])
    diffusion = [p for p in picks if p.topic == "diffusion models"]
    weighted = [p for p in diffusion if "(weighted ×3)" in p.why]
    assert len(weighted) == 2  # the 5th and 6th diffusion paper: equal shares would give it 4
    assert all(p.why.startswith("Matches “diffusion models” (weighted ×3): ") for p in weighted)
    assert [p.reason.weight for p in weighted] == [3.0, 3.0]
    assert not any("weighted" in p.why for p in picks if p not in weighted)  # its first 4 and the others
    assert weighted == diffusion[-2:]  # the least relevant of its papers are the ones the weight let in


def test_weights_of_one_change_nothing():
    assert [(p.paper_id, p.why) for p in picks_of([1.0, 1.0])] == [(p.paper_id, p.why) for p in picks_of([])]


def test_a_weighted_reader_is_ranked_alike_alone_or_in_a_batch():
    profiles = [Profile(1, ["diffusion models", "differential privacy"], max_items=8, weights=[3.0, 1.0]),
                Profile(2, ["differential privacy"], max_items=5),
                Profile(3, ["  ", "diffusion models", "differential privacy"], max_items=6,
                        weights=[5.0, 0.5, 1.0])]
    together = rank(papers(), profiles, now=NOW)
    for pr in profiles:
        alone = rank(papers(), [pr], now=NOW)[pr.subscriber_id]
        mixed = together[pr.subscriber_id]
        assert [(p.paper_id, p.why) for p in alone] == [(p.paper_id, p.why) for p in mixed]
    assert shares(together[3]) == (2, 4)  # the blank topic's weight counts for nothing


# ------------------------------------------------------------------------------- the rule at the door


def test_weights_are_read_from_the_topic_and_checked():
    given = ["diffusion models=2", "GNN", "P=NP", " x = 0.5 ", "Diffusion Models=3"]
    expected = [("diffusion models", 2.0), ("GNN", 1.0), ("P=NP", 1.0), ("x", 0.5)]
    assert clean_weighted_topics(given) == expected
    for bad in ("diffusion models=20", "diffusion models=0", "diffusion models=-1", "diffusion models=0.05"):
        with pytest.raises(SubscriberError) as err:
            clean_weighted_topics([bad])
        assert str(err.value).startswith("topic 'diffusion models': weight ")
        assert str(err.value).endswith("is out of range (from 0.1 to 10; 1 is the usual share)")


@pytest.fixture
def cli(tmp_path, db_url):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[web]\nsecret_file = "{tmp_path / "secret"}"\n'
                   '[digest]\nranker = "lexical"\n')
    runner = CliRunner()

    def digest(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return digest


def test_the_cli_sets_shows_and_changes_weights(cli):
    cli("subscribers", "add", "ada@example.org", "--topic", "diffusion models=2", "--topic", "GNN")
    assert "topics: diffusion models=2; GNN\n" in cli("subscribers", "show", "ada@example.org")
    shown = json.loads(cli("subscribers", "show", "ada@example.org", "--json"))
    assert shown["topics"] == ["diffusion models", "GNN"] and shown["topic_weights"] == [2.0, 1.0]
    out = cli("subscribers", "update", "ada@example.org", "--topic", "diffusion models=0.5", "--topic",
              "GNN=3")
    assert out.endswith("topics: diffusion models=0.5; GNN=3\n")
    assert "diffusion models=0.5; GNN=3" in cli("subscribers", "list")
    refused = cli("subscribers", "update", "ada@example.org", "--topic", "GNN=11", code=1)
    assert refused == "Error: topic 'GNN': weight 11 is out of range (from 0.1 to 10; 1 is the usual share)\n"
    refused = cli("subscribers", "add", "bob@example.org", "--topic", "GNN=abc", "--topic", "RL=99", code=1)
    assert refused.count("\n") == 1 and "weight 99 is out of range" in refused
    assert "no subscriber" in cli("subscribers", "show", "bob@example.org", code=1)  # nothing stored
    assert "topics: diffusion models=0.5; GNN=3\n" in cli("subscribers", "show", "ada@example.org")


def test_a_preview_of_weighted_topics(cli):
    cli("ingest")
    text = cli("preview", "--topic", "diffusion models=3", "--topic", "language models", "--format", "text")
    assert "Matches “diffusion models” (weighted ×3)" in text
    refused = cli("preview", "--topic", "diffusion models=30", code=1)
    assert refused == ("Error: topic 'diffusion models': weight 30 is out of range (from 0.1 to 10; 1 is the "
                       "usual share)\n")


def test_the_sign_up_form_takes_a_weight_too(db, settings_for):
    with SmtpSink() as sink:
        smtp = {"host": sink.host, "port": sink.port}
        settings = settings_for(db.url, mail={"transport": "smtp", "smtp": smtp})
        with TestClient(create_app(settings, db), base_url="http://testserver") as c:
            token = re.search(r'name="csrf" value="([^"]+)"', c.get("/").text).group(1)
            form = {"csrf": token, "email": "ada@example.org", "frequency": "daily", "hour": "8",
                    "topics": "diffusion models=2, GNN", "timezone": "UTC"}
            page = c.post("/subscribe", data=form)
            c.app.state.site.signups.join()
    assert page.status_code == 200 and len(sink.messages) == 1
    pending = subscribers.get(db, "ada@example.org")
    assert pending.topics == ("diffusion models", "GNN") and pending.topic_weights == (2.0, 1.0)


# -------------------------------------------------------------------------------------------- CSV


def test_the_topics_column_carries_the_weights_and_round_trips(db):
    subscribers.add(db, "ada@example.org", ProfileChange(topics=["diffusion models=2.5", "GNN"]))
    subscribers.add(db, "bob@example.org", ProfileChange(topics=["speech"]))
    out = io.StringIO()
    subscriber_csv.export_csv(db, out)
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows["ada@example.org"]["topics"] == "diffusion models=2.5; GNN"
    assert rows["bob@example.org"]["topics"] == "speech"  # no weight: written as before
    subscribers.change(db, "ada@example.org", ProfileChange(topics=["other"]))
    subscribers.remove(db, "bob@example.org")
    added, updated, errors = subscriber_csv.import_csv(db, io.StringIO(out.getvalue()))
    assert (added, updated, errors) == (1, 1, [])
    ada = subscribers.get(db, "ada@example.org")
    assert ada.topics == ("diffusion models", "GNN") and ada.topic_weights == (2.5, 1.0)
    assert subscribers.get(db, "bob@example.org").topic_weights == ()  # all 1


def test_an_old_file_imports_as_before_and_a_bad_weight_names_its_line(db):
    old = "email,topics\nada@example.org,diffusion models; GNN\nbob@example.org,GNN=12\ncy@example.org,RL=4\n"
    added, updated, errors = subscriber_csv.import_csv(db, io.StringIO(old))
    assert (added, updated) == (2, 0)
    assert errors == ["line 3, column topics: topic 'GNN': weight 12 is out of range (from 0.1 to 10; 1 is "
                      "the usual share)"]
    assert subscribers.get(db, "ada@example.org").topics == ("diffusion models", "GNN")
    assert subscribers.get(db, "cy@example.org").topic_weights == (4.0,)


def test_a_topic_weights_column_sets_the_weights_of_the_rows_topics(db):
    text = ("email,topics,topic_weights\n"
            "ada@example.org,diffusion models; GNN,Diffusion Models=2; GNN=0.5\n"
            "bob@example.org,speech=3; GNN,speech=1.5\n"  # the column wins over the weight in topics
            "cy@example.org,speech,GNN=2\n"  # not one of the row's topics
            "dee@example.org,speech,speech=11\n"  # the same range as in topics
            "eve@example.org,speech,\n")  # an empty cell: the topics' own weights
    added, updated, errors = subscriber_csv.import_csv(db, io.StringIO(text))
    assert (added, updated) == (3, 0)
    assert errors == ["line 4, column topic_weights: 'GNN' is not one of the row's topics",
                      "line 5, column topic_weights: topic 'speech': weight 11 is out of range (from 0.1 to "
                      "10; 1 is the usual share)"]
    ada = subscribers.get(db, "ada@example.org")
    assert ada.topics == ("diffusion models", "GNN") and ada.topic_weights == (2.0, 0.5)
    assert subscribers.get(db, "bob@example.org").topic_weights == (1.5, 1.0)
    assert subscribers.get(db, "eve@example.org").topic_weights == ()
    out = io.StringIO()
    subscriber_csv.export_csv(db, out)  # written back in the topics column, as always
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert "topic_weights" not in rows["ada@example.org"]
    assert rows["ada@example.org"]["topics"] == "diffusion models=2; GNN=0.5"


# ------------------------------------------------------------------------------ the preferences page


@pytest.mark.slow
@pytest.mark.skipif(not (CHROME.exists() and DRIVER.exists()) and not os.environ.get("CI"),
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_the_preferences_page_sets_a_weight_that_the_next_digest_follows(tmp_path):
    with serving(tmp_path, '[digest]\nranker = "lexical"\n') as (_base, env, sink, tmp):
        run(env, "subscribers", "add", "ada@example.org", "--topic", "diffusion models", "--topic",
            "language models", "--max-items", "8")
        settings = setup.load_settings(env["DIGEST_CONFIG"])
        db, _ = setup.open_database(settings, "check")
        sid = subscribers.get(db, "ada@example.org").id
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        b = Browser(tmp / "chrome")
        try:
            b.driver.get(links_for(settings).preferences(sid))
            assert "diffusion models=2 gives it twice the share of your digest" in b.text()
            topics = b.find("textarea[name=topics]")
            topics.clear()
            topics.send_keys("diffusion models=30\nlanguage models")
            b.click_and_wait("form.stack button[type=submit]")
            assert "topic 'diffusion models': weight 30 is out of range" in b.text()
            assert subscribers.get(db, "ada@example.org").topic_weights == ()  # nothing written
            topics = b.find("textarea[name=topics]")
            topics.clear()
            topics.send_keys("diffusion models=3\nlanguage models")
            b.click_and_wait("form.stack button[type=submit]")
            assert "Saved" in b.text()
            shown = b.find("textarea[name=topics]").get_attribute("value")
            assert shown == "diffusion models=3\nlanguage models"
            b.shot("10-preferences-weights")
        finally:
            b.quit()
        assert subscribers.get(db, "ada@example.org").topic_weights == (3.0, 1.0)
        db.dispose()
        assert "sent 1" in run(env, "send")
        body = text_of(wait_for_mail(sink, 1)[0])
    whys = re.findall(r"^ {3}(Matches “(?:diffusion|language) models”.*?)\r?$", body, re.M)
    assert sum(w.startswith("Matches “diffusion models”") for w in whys) == 6
    assert sum(w.startswith("Matches “language models”") for w in whys) == 2
    assert sum("(weighted ×3)" in w for w in whys) == 2
