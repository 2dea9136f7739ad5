"""Ctrl-C on the commands that have no stop of their own, and on `digest subscribers import`: one line
and exit 130, never click's "Aborted!" with exit 1 or a traceback, and nothing written is lost.

Each test runs the real command as a subprocess and signals it at a moment it can see: a real HTTP
server that takes the connection and never answers (the command is then inside its work), or the
first rows of an import in the database."""

from __future__ import annotations

import signal
import socket
import threading

import pytest
from sqlalchemy import func, select

from digest.store.models import Subscriber
from digest.subscriptions import subscribers
from digest.subscriptions.subscriber_csv import IMPORT_CHUNK
from tests.test_signals import Command, assert_gone, wait_for


def config(workdir, db_url: str, extra: str = "") -> None:
    workdir.mkdir()
    (workdir / "config.toml").write_text(f'[database]\nurl = "{db_url}"\n[digest]\nranker = "lexical"\n'
                                         + extra, encoding="utf-8")


class Silent:
    """A TCP server on loopback that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        for c in self.accepted:
            c.close()
        self.sock.close()


@pytest.mark.sqlite_only
def test_ctrl_c_while_a_command_waits_on_the_network_is_one_line_and_130(db, db_url, tmp_path):
    subscribers.add(db, "ada@example.org")
    arxiv = Silent()
    try:
        config(tmp_path / "w", db_url,
               f'[sources.ax]\ntype = "arxiv"\nbase_url = "http://127.0.0.1:{arxiv.port}/api"\ndelay = 0\n')
        cmd = Command(tmp_path / "w", "subscribers", "seed", "ada@example.org", "--arxiv", "2006.11239")
        assert wait_for(lambda: arxiv.accepted, timeout=120), cmd.log  # it is asking arXiv now
        cmd.proc.send_signal(signal.SIGINT)
        code = cmd.wait(timeout=30)
    finally:
        arxiv.close()
    assert code == 130, cmd.log
    assert "stopped by SIGINT" in cmd.log, cmd.log
    assert "Traceback" not in cmd.log and "Aborted" not in cmd.log, cmd.log
    assert_gone(cmd)


def stored(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Subscriber))


def test_ctrl_c_during_an_import_keeps_whole_chunks_and_the_same_import_finishes_it(db, db_url, tmp_path):
    n = 12 * IMPORT_CHUNK
    csv = tmp_path / "list.csv"
    csv.write_text("email,topics\n" + "".join(f"reader{i}@example.org,graph neural networks\n"
                                              for i in range(n)), encoding="utf-8")
    config(tmp_path / "w", db_url)
    cmd = Command(tmp_path / "w", "subscribers", "import", str(csv))
    assert wait_for(lambda: stored(db) > 0), cmd.log  # the first chunk is written
    assert cmd.proc.poll() is None, f"the import ended before the signal:\n{cmd.log}"
    cmd.proc.send_signal(signal.SIGINT)
    assert cmd.wait(timeout=60) == 130, cmd.log
    assert "stopped by SIGINT before the end of the file" in cmd.log and "Traceback" not in cmd.log, cmd.log
    kept = stored(db)
    assert 0 < kept < n and kept % IMPORT_CHUNK == 0, kept  # whole chunks, each one transaction

    again = Command(tmp_path / "w", "subscribers", "import", str(csv))
    assert again.wait(timeout=300) == 0, again.log
    assert f"added {n - kept}, updated {kept}, skipped 0" in again.out
    assert stored(db) == n
