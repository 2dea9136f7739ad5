import io

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.subscriptions import subscriber_csv, subscribers
from digest.subscriptions.subscribers import SubscriberError
from digest.usecases.reads import StoreReads


def test_add_normalises_and_refuses_duplicates(db):
    v = subscribers.add(db, "  Ada@Example.ORG ", topics=["diffusion models", "Diffusion Models", " GNN "],
                        excludes=["survey"], timezone="Europe/Paris", hour=7, frequency="weekly",
                        weekday="friday")
    assert v.email == "ada@example.org"
    assert v.topics == ("diffusion models", "GNN") and v.excludes == ("survey",)
    assert (v.frequency, v.weekday, v.hour, v.timezone) == ("weekly", 4, 7, "Europe/Paris")
    with pytest.raises(SubscriberError, match="already subscribed"):
        subscribers.add(db, "ada@example.org")


@pytest.mark.parametrize("kwargs,match", [
    ({"email": "not-an-address"}, "not a valid email"),
    ({"email": "a@example.org", "timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"email": "a@example.org", "frequency": "hourly"}, "frequency"),
    ({"email": "a@example.org", "topics": ["x" * 101]}, "topic too long"),
    ({"email": "a@example.org", "topics": [f"t{i}" for i in range(21)]}, "too many topics"),
])
def test_bad_input_is_rejected_at_the_door(db, kwargs, match):
    kwargs = dict(kwargs)
    email = kwargs.pop("email")
    with pytest.raises(SubscriberError, match=match):
        subscribers.add(db, email, **kwargs)
    assert subscribers.list_all(db) == []


def test_csv_round_trip_and_bad_rows_are_reported(db):
    subscribers.add(db, "ada@example.org", topics=["diffusion models", "video"], timezone="Europe/London")
    subscribers.add(db, "alan@example.org", excludes=["survey"], frequency="weekdays", hour=6)
    buf = io.StringIO()
    assert subscriber_csv.export_csv(db, buf) == 2
    exported = buf.getvalue()
    for email in ("ada@example.org", "alan@example.org"):
        subscribers.remove(db, email)
    bad = (exported
           + "broken-address,,active,,,daily,0,8,UTC,\ngrace@example.org,,active,,,daily,0,8,Nowhere/Land,\n")
    added, updated, errors = subscriber_csv.import_csv(db, io.StringIO(bad))
    assert (added, updated, len(errors)) == (2, 0, 2)
    assert "line 4" in errors[0] and "line 5" in errors[1]
    again = io.StringIO()
    subscriber_csv.export_csv(db, again)
    assert again.getvalue() == exported


def test_cli_subscribers_commands(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n[web]\nsecret_file = '
                   f'"{tmp_path / "s"}"\n')
    run = CliRunner().invoke
    r = run(main,
            ["--config", str(cfg), "subscribers", "add", "ada@example.org", "--topic", "GNN", "--hour", "9"])
    assert r.exit_code == 0, r.output
    r = run(main, ["--config", str(cfg), "subscribers", "add", "bad@", "--topic", "GNN"])
    assert r.exit_code == 1 and "not a valid email" in r.output and "Traceback" not in r.output
    r = run(main, ["--config", str(cfg), "subscribers", "list", "--json"])
    assert '"email": "ada@example.org"' in r.output and '"hour": 9' in r.output
    r = run(main, ["--config", str(cfg), "subscribers", "show", "ada@example.org"])
    assert "topics: GNN" in r.output and "recent deliveries: none" in r.output
    r = run(main, ["--config", str(cfg), "subscribers", "remove", "ada@example.org", "--yes"])
    assert r.exit_code == 0
    r = run(main, ["--config", str(cfg), "subscribers", "show", "ada@example.org"])
    assert r.exit_code == 1 and "no subscriber ada@example.org" in r.output


def test_an_edition_planned_before_a_pause_is_not_sent(db, settings_for, tmp_path):
    from datetime import UTC, datetime

    from digest.mail.transport import OutboxTransport
    from digest.sources.ingest import ingest
    from digest.usecases import planning, sending

    settings = settings_for(db.url)
    ingest(db, settings)
    v = subscribers.add(db, "ada@example.org", topics=["diffusion models"])
    assert planning.plan(db, settings).planned == 1
    subscribers.pause(db, v.id, 2, datetime.now(UTC))
    outbox = tmp_path / "outbox"
    report = sending.send(db, settings, transport=OutboxTransport(outbox))
    assert (report.sent, report.suppressed) == (0, 1)
    assert not list(outbox.glob("*.eml"))


def test_also_trending_lists_only_upvoted_papers(db, settings_for):
    from digest.sources.ingest import ingest
    from digest.usecases import previewing

    settings = settings_for(db.url)  # the bundled sample: HF papers with upvotes, listing pages without
    ingest(db, settings)
    rendered = previewing.preview(db, settings, topics=["graph neural networks"]).rendered
    block = rendered.text.split("Also trending\n-------------\n", 1)[1].split("\n--\n", 1)[0]
    entries = [line for line in block.splitlines() if line.startswith("- ")]
    assert len(entries) == settings.digest.trending_items
    assert all("upvote" in line for line in entries)


def test_import_leaves_the_columns_a_file_lacks_and_unsubscribes_like_the_web(db, monkeypatch):
    subscribers.add(db, "ada@example.org", name="Ada", topics=["diffusion models"], excludes=["survey"],
                    timezone="Europe/London", hour=7, frequency="weekly", weekday="friday", max_items=5)
    added, updated, errors = subscriber_csv.import_csv(db,
                                                       io.StringIO("email\nada@example.org\ngrace@example.org\n"))
    assert (added, updated, errors) == (1, 1, [])
    ada = subscribers.get(db, "ada@example.org")
    assert (ada.name, list(ada.topics), list(ada.excludes), ada.frequency, ada.weekday, ada.hour,
            ada.timezone,
            ada.max_items) == ("Ada", ["diffusion models"], ["survey"], "weekly", 4, 7, "Europe/London", 5)
    grace = subscribers.get(db, "grace@example.org")  # a new row gets the defaults
    assert (grace.status, grace.frequency, grace.hour, grace.timezone,
            list(grace.topics)) == ("active", "daily", 8,
                                                                                               "UTC", [])
    subscriber_csv.import_csv(db, io.StringIO("email,status\nada@example.org,unsubscribed\n"))
    ada = subscribers.get(db, "ada@example.org")
    assert (ada.status == "unsubscribed" and ada.unsubscribed_at is not None and list(ada.topics)
            == ["diffusion models"])
    assert subscribers.feedback_and_suppression(db, "ada@example.org")["suppressed"] == "unsubscribed"


def test_import_writes_in_chunks_and_a_later_row_wins(db, monkeypatch):
    monkeypatch.setattr(subscriber_csv, "IMPORT_CHUNK", 7)
    lines = ["email,topics,hour"] + [f"u{i}@example.org,topic {i % 5};graphs,{i % 24}" for i in range(50)]
    lines += ["u3@example.org,late,23", "not-an-address,x,1"]
    added, updated, errors = subscriber_csv.import_csv(db, io.StringIO("\n".join(lines) + "\n"))
    assert (added, updated, len(errors)) == (50, 0, 1) and "line 53" in errors[0]
    got = {v.email: v for v in subscribers.list_all(db)}
    assert (len(got) == 50 and list(got["u3@example.org"].topics) == ["late"] and got["u3@example.org"].hour
            == 23)
    assert list(got["u4@example.org"].topics) == ["topic 4", "graphs"] and got["u4@example.org"].hour == 4
    assert subscriber_csv.import_csv(db, io.StringIO("\n".join(lines[:20]) + "\n"))[:2] == (0, 19)


# ---------------------------------------------------------------------- bad input at the door (issue 13)


def cli(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n[web]\nsecret_file = '
                   f'"{tmp_path / "s"}"\n')
    return lambda *args, **kw: CliRunner().invoke(main, ["--config", str(cfg), *args], **kw)


@pytest.mark.parametrize("zone", ["A" * 300, "localtime", "posixrules", "Factory", "right/UTC", "Etc/../UTC"])
def test_cli_refuses_a_zone_that_is_not_iana_in_one_line(tmp_path, zone):
    run = cli(tmp_path)
    r = run("subscribers", "add", "ada@example.org", "--timezone", zone)
    assert r.exit_code == 1 and "unknown time zone" in r.output and "Traceback" not in r.output
    assert len(r.output.splitlines()) == 1 and len(r.output) < 200 and "zoneinfo" not in r.output
    assert "/usr/" not in r.output and "site-packages" not in r.output


def test_a_stored_zone_from_before_the_rule_still_loads_plans_and_can_be_fixed(db):
    from datetime import UTC, datetime

    from digest.store.models import Subscriber as Row
    from digest.usecases.planning import due_at

    v = subscribers.add(db, "ada@example.org", timezone="UTC")
    with db.session() as s:
        s.get(Row, v.id).timezone = "localtime"
    assert subscribers.get(db, "ada@example.org").timezone == "localtime"
    assert [r["email"] for r in due_at(StoreReads(db), datetime.now(UTC))] == ["ada@example.org"]
    with pytest.raises(SubscriberError, match="unknown time zone 'localtime'"):
        subscribers.update(db, v.id, topics=[], timezone="localtime")
    assert subscribers.update(db, v.id, topics=[], timezone="Europe/Paris").timezone == "Europe/Paris"


def test_non_ascii_local_parts_are_refused_at_add_and_import_but_stored_ones_can_be_found(db):
    with pytest.raises(SubscriberError, match="SMTPUTF8"):
        subscribers.add(db, "jörg@example.org")
    added, _, errors = subscriber_csv.import_csv(db, io.StringIO("email\njörg@example.org\nana@bücher.de\n"))
    assert added == 1 and len(errors) == 1 and "line 2" in errors[0] and "SMTPUTF8" in errors[0]
    assert subscribers.get(db, "ANA@BÜCHER.DE").email == "ana@bücher.de"
    from digest.store.models import Subscriber as Row

    with db.session() as s:  # a row stored before the rule
        s.add(Row(email="jürgen@example.org", status="active"))
    assert subscribers.get(db, "jürgen@example.org").email == "jürgen@example.org"
    subscribers.remove(db, "jürgen@example.org")


def test_control_characters_are_cleaned_at_the_door_and_stored_ones_printed_safely(db, tmp_path):
    run = cli(tmp_path)
    r = run("subscribers", "add", "ada@example.org", "--name", "Ada\r\nBcc: eve@example.org",
            "--topic", "\x00\x01\x1b[31mred", "--exclude", "sur\x1b[2Jvey")
    assert r.exit_code == 0, r.output
    r = run("subscribers", "show", "ada@example.org")
    assert "name: Ada Bcc: eve@example.org\n" in r.output and "topics: red\n" in r.output
    assert "excludes: survey\n" in r.output and "\x1b" not in r.output and "\nBcc:" not in r.output
    r = run("subscribers", "add", "grace@example.org", "--name", "x" * 201)
    assert r.exit_code == 1 and "name too long" in r.output

    from sqlalchemy import create_engine, text

    eng = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    with eng.begin() as c:  # text stored before the rule, raw
        c.execute(text("UPDATE subscribers SET name = :n WHERE email = 'ada@example.org'"),
                  {"n": "Ada\nBcc: eve@example.org\x1b[31m"})
        c.execute(text("UPDATE topics SET phrase = :p"), {"p": "\x1b]0;owned\x07red\u202e"})
    eng.dispose()
    for args in (("subscribers", "show", "ada@example.org"), ("subscribers", "list")):
        r = run(*args)
        assert r.exit_code == 0 and "\x1b" not in r.output and "\x07" not in r.output, r.output
        assert "\nBcc:" not in r.output and "\u202e" not in r.output
    assert "\\x1b" in run("subscribers", "show", "ada@example.org").output  # shown, escaped


@pytest.mark.parametrize("row,column,match", [
    ("ada@example.org,abc", "hour", "hour must be a whole number"),
    ("ada@example.org,99", "hour", "hour must be 0..23"),
    ("ada@example.org,8,Nowhere/Land", "timezone", "unknown time zone 'Nowhere/Land'"),
    ("ada@example.org,8,localtime", "timezone", "unknown time zone"),
    ("ada@example.org,8,UTC,ten", "max_items", "max items must be a whole number"),
    ("ada@example.org,8,UTC,500", "max_items", "max items must be 1..100"),
    ("ada@example.org,8,UTC,5,someday", "weekday", "weekday must be one of"),
    ("ada@example.org,8,UTC,5,1,hourly", "frequency", "frequency must be one of"),
    ("not-an-address,8", "email", "not a valid email"),
])
def test_csv_fields_take_the_same_validators_and_name_row_and_column(db, row, column, match):
    src = "email,hour,timezone,max_items,weekday,frequency\ngrace@example.org,7\n" + row + "\n"
    added, _, errors = subscriber_csv.import_csv(db, io.StringIO(src))
    assert added == 1 and len(errors) == 1, errors
    assert errors[0].startswith(f"line 3, column {column}: ") and match in errors[0], errors[0]
    assert "invalid literal" not in errors[0]


def test_csv_that_cannot_be_read_imports_nothing_in_one_line(tmp_path):
    run = cli(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\ngrace@example.org,Grace\nada@example.org," + "x" * 200_000 + "\n")
    r = run("subscribers", "import", str(bad))
    assert (r.exit_code == 1 and "after line 2: not readable as CSV" in r.output
            and "Traceback" not in r.output)
    assert "0 subscribers" in run("subscribers", "list").output
