"""The one inbound-mailbox reader (digest.mail.mailbox), and both commands that read mailboxes applying
its rule."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.mail import mailbox as inbox
from digest.subscriptions import subscribers
from tests.test_bounces import dsn


def note(subject: str, sender: str = "ada@example.org") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "unsubscribe@example.org", subject
    m.set_content("")
    return m.as_bytes()


def subjects(raws) -> list[str]:
    return [raw.split(b"Subject: ", 1)[1].split(b"\n", 1)[0].strip().decode() for raw in raws]


def flags(path) -> dict[str, str]:
    """Subject -> 'subdir:flags' of each message in a Maildir."""
    box = mailbox.Maildir(path, create=False)
    return {m["Subject"]: f"{m.get_subdir()}:{m.get_flags()}"
            for m in (box.get_message(k) for k in box.iterkeys())}


@pytest.mark.parametrize("folders", [(), ("new",), ("cur",)])
def test_a_maildir_needs_new_and_cur(tmp_path, folders):
    for f in folders:
        (tmp_path / f).mkdir()
    with pytest.raises(ValueError, match=r"^.+: not a Maildir \(needs new/ and cur/\)$") as err:
        inbox.maildir_messages(tmp_path)  # at the call, before any reading
    assert str(tmp_path) in str(err.value)


def test_a_missing_mbox_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"^.+missing: no such mbox file$"):
        inbox.mbox_messages(tmp_path / "missing")


def test_both_paths_are_checked_before_anything_is_read(tmp_path):
    box = mailbox.Maildir(tmp_path / "md", create=True)
    box.add(note("one"))
    with pytest.raises(ValueError, match="no such mbox file"):
        inbox.messages(tmp_path / "md", tmp_path / "missing", mark_seen=True)
    assert flags(tmp_path / "md") == {"one": "new:"}


def test_maildir_then_mbox_read_only(tmp_path):
    md = mailbox.Maildir(tmp_path / "md", create=True)
    md.add(note("one"))
    seen = mailbox.MaildirMessage(note("seen"))
    seen.set_subdir("cur")
    seen.add_flag("S")
    md.add(seen)
    mb = mailbox.mbox(tmp_path / "mbox", create=True)
    mb.add(note("three"))
    mb.close()
    before = flags(tmp_path / "md")
    assert sorted(subjects(inbox.messages(tmp_path / "md", tmp_path / "mbox"))[:2]) == ["one", "seen"]
    assert subjects(inbox.messages(tmp_path / "md", tmp_path / "mbox"))[2:] == ["three"]
    assert flags(tmp_path / "md") == before  # left as it was


def test_mark_seen_marks_each_message_once_handled(tmp_path):
    md = mailbox.Maildir(tmp_path / "md", create=True)
    for s in ("one", "two", "three"):
        md.add(note(s))
    handled = []
    with pytest.raises(RuntimeError):
        for raw in inbox.maildir_messages(tmp_path / "md", mark_seen=True):
            if len(handled) == 1:
                raise RuntimeError("handling the second message failed")
            handled += subjects([raw])
    [first] = handled
    state = flags(tmp_path / "md")
    assert state.pop(first) == "cur:S"
    assert set(state.values()) == {"new:"}  # the one that failed stays unseen, like the one never reached
    rest = subjects(inbox.maildir_messages(tmp_path / "md", mark_seen=True))
    assert sorted(rest) == sorted(state)
    assert set(flags(tmp_path / "md").values()) == {"cur:S"}
    assert list(inbox.maildir_messages(tmp_path / "md", mark_seen=True)) == []


@pytest.mark.sqlite_only
def test_both_commands_apply_the_same_maildir_rule(db, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{db.url}"\n[web]\nsecret_file = "{tmp_path / "s"}"\n')
    subscribers.add(db, "ada@example.org", topics=["graph neural networks"])
    runner = CliRunner()

    def run(command: str, path) -> tuple[int, str]:
        out = runner.invoke(main, ["--config", str(cfg), command, "process", "--maildir", str(path)])
        return out.exit_code, out.output.strip()

    half = tmp_path / "half"
    (half / "new").mkdir(parents=True)  # once read by `bounces process`, refused by `unsubscribes process`
    refused = (1, f"Error: {half}: not a Maildir (needs new/ and cur/)")
    assert run("bounces", half) == refused
    assert run("unsubscribes", half) == refused

    box = mailbox.Maildir(tmp_path / "inbox", create=True)
    box.add(dsn("ada@example.org"))
    box.add(note("unsubscribe"))
    assert run("bounces", tmp_path / "inbox") == (0, (
        "read 2 messages: 1 hard, 0 soft, 0 complaints, 0 already recorded, 1 not bounce reports; "
        "suppressed 1 addresses"))
    assert run("unsubscribes",
               tmp_path / "inbox") == (0, "read 2: unsubscribed 1, already 0, unknown 0, skipped 1")
    assert run("unsubscribes",
               tmp_path / "inbox") == (0, "read 0: unsubscribed 0, already 0, unknown 0, skipped 0")
    # bounces reads seen ones too
    assert run("bounces", tmp_path / "inbox")[1].startswith("read 2 messages: 0 hard")
