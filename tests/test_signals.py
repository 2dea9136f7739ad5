"""Signals: SIGINT and SIGTERM at random moments of a real `digest send` (plain and `--workers 2`), on
SQLite and PostgreSQL, against a real SMTP server slow enough to be interrupted mid-send.

Each run starts `digest -v send` as a subprocess in a working directory of its own, waits for the
moment its case names (planning began, the hand-over to sending, or a random number of messages
received), signals the parent process alone, then checks: the command ends within 10 s with 130
(SIGINT) or 143 (SIGTERM) and no traceback; every process of its tree (the sending processes
included) is gone; no delivery is left `sending`; and the next `digest send` sends the rest, so that
every subscriber got their digest exactly once. Set SIGNAL_SEED to replay the moments.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.mail.sink import Faults, SmtpSink
from digest.store.models import Delivery
from tests.factories import BASE, FROM, add_papers, add_subscribers, addr

N = 40
DATA_DELAY = 0.1  # seconds the server takes over each message: sending lasts seconds, not milliseconds
SEED = int(os.environ.get("SIGNAL_SEED", random.randrange(10**6)))
INT, TERM = signal.SIGINT, signal.SIGTERM


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc: children, their children...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.update(kids)
        todo += kids
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Command:
    """`digest -v send ...` running in `workdir`: its log read as it comes (a pipe nobody reads
    would stall it), its process tree watched."""

    def __init__(self, workdir: Path, *args: str, group: bool = False):
        # group: a process group of its own, so that the test can signal it all, as a terminal's Ctrl-C does
        self.proc = subprocess.Popen([sys.executable, "-m", "digest.cli", "-v", *args], cwd=workdir,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     process_group=0 if group else None)
        self.lines: list[str] = []
        self.out = ""
        self.tree: set[int] = set()
        self._readers = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._watch, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def _read_out(self) -> None:
        self.out = self.proc.stdout.read()

    def _watch(self) -> None:
        while self.proc.poll() is None:
            self.tree |= descendants(self.proc.pid)
            time.sleep(0.05)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in [self.proc.pid, *descendants(self.proc.pid)]:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"still running after {timeout} s:\n{self.log}") from None
        for t in self._readers[:2]:
            t.join(timeout=5)
        return code


def wait_for(condition, timeout: float = 180.0) -> bool:  # a sending process starts slowly on a busy machine
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def world(db, db_url, tmp_path):
    """N subscribers with something new to read, a config in a working directory of its own, and a
    slow SMTP server; yields (workdir, sink)."""
    add_papers(db, 10)
    add_subscribers(db, N)
    workdir = tmp_path / "install"
    workdir.mkdir()
    with SmtpSink(faults=Faults(delay=DATA_DELAY)) as sink:
        (workdir / "config.toml").write_text(
            f'[database]\nurl = "{db_url}"\n'
            f'[web]\nbase_url = "{BASE}"\n'
            f'[digest]\nranker = "lexical"\n'
            f'[mail]\ntransport = "smtp"\nfrom_address = "{FROM}"\n'
            f'unsubscribe_mailto = "unsubscribe@example.org"\n'
            f'[mail.smtp]\nhost = "{sink.host}"\nport = {sink.port}\npool_size = 1\n')
        yield workdir, sink


def sending_left(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sending"))


def signal_at(cmd: Command, sink: SmtpSink, moment: str, rng: random.Random) -> None:
    """Wait for the moment, then signal; the command must still be running when it comes."""
    if moment == "planning":
        assert wait_for(lambda: cmd.saw("planning editions")), cmd.log
        time.sleep(rng.uniform(0, 0.2))
    elif moment == "handover":
        assert wait_for(lambda: cmd.saw("sending") and cmd.saw("due deliveries")), cmd.log
        time.sleep(rng.uniform(0, 0.05))
    else:
        target = rng.randint(1, N // 2)
        assert wait_for(lambda: sink.handler.received >= target), cmd.log
    assert cmd.proc.poll() is None, f"the command ended before the {moment} moment: {cmd.log}"


def assert_gone(cmd: Command) -> None:
    """No process of the command's tree is left (a moment for the kernel to reap the last ones)."""
    left = set()
    for _ in range(40):
        left = {p for p in cmd.tree if alive(p)}
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes left behind: {sorted(left)}\n{cmd.log}")


def finish_and_count(db, workdir: Path, sink: SmtpSink) -> None:
    """The next `digest send` sends the rest: every subscriber got exactly one digest."""
    rest = Command(workdir, "send")
    assert rest.wait(timeout=120) == 0, rest.log + rest.out
    got = Counter(m.recipients[0] for m in sink.messages)
    assert got == {addr(i): 1 for i in range(N)}, f"seed {SEED}: {got}"
    with db.session() as s:
        assert set(s.scalars(select(Delivery.status))) == {"sent"}


@pytest.mark.parametrize("workers,moment,signum", [
    (1, "planning", INT), (1, "sending", TERM),
    (2, "planning", TERM), (2, "handover", INT), (2, "sending", TERM), (2, "sending", INT),
], ids=lambda v: v.name if isinstance(v, signal.Signals) else str(v))
def test_a_signal_gives_everything_back_and_the_next_run_sends_the_rest_once(db, world, workers, moment,
                                                                            signum):
    workdir, sink = world
    rng = random.Random(f"{SEED}-{workers}-{moment}-{signum}")
    cmd = Command(workdir, "send", "--workers", str(workers))
    signal_at(cmd, sink, moment, rng)
    cmd.proc.send_signal(signum)
    code = cmd.wait(timeout=10)
    assert code == 128 + signum, f"seed {SEED}: exit {code}\n{cmd.log}"
    assert "Traceback" not in cmd.log and "Error:" not in cmd.log, cmd.log
    assert f"stopped by {signum.name}" in cmd.log, cmd.log
    assert_gone(cmd)
    assert sending_left(db) == 0, f"seed {SEED}\n{cmd.log}"
    finish_and_count(db, workdir, sink)


@pytest.mark.sqlite_only
def test_a_second_signal_exits_at_once_and_the_sending_processes_give_back_theirs(db, world):
    """Ctrl-C twice on `--workers 2` mid-send: the parent exits at once; its sending processes end
    their message in flight, give back what they hold and end too."""
    workdir, sink = world
    cmd = Command(workdir, "send", "--workers", "2")
    assert wait_for(lambda: sink.handler.received >= 3), cmd.log
    cmd.proc.send_signal(INT)
    cmd.proc.send_signal(INT)
    assert cmd.wait(timeout=10) == 130, cmd.log
    assert "Traceback" not in cmd.log, cmd.log
    assert_gone(cmd)
    assert sending_left(db) == 0, cmd.log
    finish_and_count(db, workdir, sink)


@pytest.mark.sqlite_only
def test_sending_processes_end_with_their_parent_even_when_it_is_killed(db, world):
    """SIGKILL to the parent alone (nothing can be handled): its sending processes notice, give back
    what they hold and end; nothing is left `sending` and the next run sends the rest once."""
    workdir, sink = world
    cmd = Command(workdir, "send", "--workers", "2")
    assert wait_for(lambda: sink.handler.received >= 3), cmd.log
    assert wait_for(lambda: len(cmd.tree) >= 2), cmd.log
    cmd.proc.send_signal(signal.SIGKILL)
    cmd.wait(timeout=10)
    assert_gone(cmd)
    assert sending_left(db) == 0, cmd.log
    finish_and_count(db, workdir, sink)
