"""Long work says how far it is (issue 25): a line every few seconds when stderr is not a terminal (cron,
logs), through the one helper every command uses (digest.cli.progress), for ingest, import and
planning alike."""

from __future__ import annotations

import json

from click.testing import CliRunner

from digest.cli import main
from digest.cli import progress as progress_mod
from digest.cli.progress import Progress, Steps


def test_without_a_terminal_a_line_every_few_seconds_and_one_at_the_end(capsys):
    with Progress("reading", terminal=False, every=0) as p:
        p(5)
        p(7)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("reading: 5 (") and lines[1].startswith("reading: 12 (")
    assert lines[-1].startswith("reading: 12 (") and len(lines) == 3


def test_quiet_between_lines_and_when_disabled(capsys):
    with Progress("reading", terminal=False, every=3600) as p:
        for _ in range(100):
            p(1)
    assert [ln.split(" (")[0] for ln in capsys.readouterr().err.splitlines()] == ["reading: 100"]
    with Progress("reading", terminal=False, every=0, enabled=False) as p:
        p(3)
    assert capsys.readouterr().err == ""


def test_steps_finish_each_step_before_the_next(capsys):
    with Steps({"a": "first", "b": "second"}, terminal=False) as steps:
        steps("a")(2)
        steps("b")(3)
    assert capsys.readouterr().err.splitlines()[-2:][0].startswith("first: 2")


def test_ingest_import_and_send_say_how_far_they_are(tmp_path, monkeypatch):
    monkeypatch.setattr(progress_mod, "EVERY", 0.0)
    papers = tmp_path / "papers.jsonl"
    papers.write_text("\n".join(json.dumps({"id": f"2412.{i:05d}", "title": f"Paper number {i} on graphs",
                                            "abstract": f"Graph neural networks, paper {i}."})
                                for i in range(30)) + "\n", encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "digest.db"}"\n[digest]\nranker = "lexical"\n'
        f'[sources.files]\ntype = "file"\npaths = ["{papers}"]\n', encoding="utf-8")
    (tmp_path / "subs.csv").write_text("email,topics\na@example.org,graph neural networks\n")
    runner = CliRunner()
    env = {"DIGEST_CONFIG": str(tmp_path / "config.toml")}
    out = runner.invoke(main, ["ingest"], env=env)
    assert out.exit_code == 0, out.output
    assert "reading listings: 30 (" in out.stderr and "analysing terms: 30 (" in out.stderr
    out = runner.invoke(main, ["subscribers", "import", str(tmp_path / "subs.csv")], env=env)
    assert out.exit_code == 0 and "importing subscribers: 1 (" in out.stderr
    out = runner.invoke(main, ["send", "--dry-run"], env=env)
    assert out.exit_code == 0 and "planning: 1 (" in out.stderr
