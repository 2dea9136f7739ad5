"""Commands start fast (issue 25): `digest --help` loads none of the heavy libraries, and `digest
status` / `digest due` none of the ranking's or the renderer's (digest.lazy loads them on first use),
nor Alembic when the database is at the current schema (digest.store.revisions.known_revisions), nor
prometheus_client (the metrics of runs), nor SQLAlchemy on a current SQLite database (they read
through digest.store.quick_read).
Each command runs in a fresh interpreter, as an admin runs it; what it imported is read from
sys.modules when it exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("numpy", "scipy", "sklearn", "jinja2", "mjml", "premailer", "torch", "onnxruntime",
         "sentence_transformers", "bs4", "httpx")
PROBE = """
import atexit, json, sys
atexit.register(lambda: print("\\nMODULES " + json.dumps(sorted(  # the modules loaded, not the lazy ones
    n for n, m in sys.modules.items() if type(m).__name__ != "_LazyModule")), file=sys.stderr))
from digest.cli import main
sys.argv = ["digest", *sys.argv[1:]]
main()
"""


def loaded(*args: str, env: dict | None = None) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def heavy(modules: set[str], extra: tuple[str, ...] = ()) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in (*HEAVY, *extra))


def test_help_loads_no_heavy_library():
    modules = loaded("--help")
    assert "click" in modules and "digest.cli" in modules
    assert heavy(modules) == []
    assert not [m for m in modules if m.startswith(("sqlalchemy", "alembic", "pydantic"))]


@pytest.mark.parametrize("command", ["status", "due"])
def test_status_and_due_load_neither_the_ranking_nor_the_renderer(command, tmp_path):
    (tmp_path / "config.toml").write_text(f'[database]\nurl = "sqlite:///{tmp_path / "digest.db"}"\n'
                                          f'[digest]\nranker = "lexical"\n', encoding="utf-8")
    env = {"DIGEST_CONFIG": str(tmp_path / "config.toml")}
    subprocess.run([sys.executable, "-m", "digest.cli", "init"], env={**os.environ, **env}, check=True,
                   capture_output=True, timeout=120)
    modules = loaded(command, env=env)
    assert "digest.usecases.status" in modules or "digest.usecases.planning" in modules
    assert heavy(modules, extra=("alembic", "mako", "prometheus_client")) == []
    assert "digest.ranking.corpus" not in modules and "digest.render" not in modules
    # on a current SQLite database they read through digest.store.quick_read: no SQLAlchemy at all
    assert "digest.store.quick_read" in modules
    assert heavy(modules, extra=("sqlalchemy", "psycopg")) == []

