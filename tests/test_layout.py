"""The architecture as a test: the flow runs one way, the shells stay thin, each rule lives once.

Layers, lowest first (README "Layout"): records; config, metrics and the collector policy (bulk); ranking, render, mail, store and the source
parsers; ingest, subscriptions, planning; delivery; pipeline; the shells (cli, web, scheduler, demo).
A module may import from a lower layer or from its own package, never from a higher layer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "digest"

LAYERS = {  # the most specific prefix wins
    "digest.records": 0,
    "digest.config": 1, "digest.metrics": 1, "digest.bulk": 1,
    "digest.ranking": 2, "digest.render": 2, "digest.mail": 2, "digest.store": 2, "digest.sources": 2,
    "digest.sources.ingest": 3, "digest.subscriptions": 3, "digest.planning": 3,
    "digest.delivery": 4,
    "digest.pipeline": 5,
    "digest.cli": 6, "digest.web": 6, "digest.scheduler": 6, "digest.demo": 6,
}
SHELLS = ("digest.cli", "digest.web", "digest.scheduler", "digest.demo")
# What a shell may use: the pipeline, subscriptions, config and the plain records; the demo also runs
# its in-process SMTP server, and the CLI starts the other shells.
SHELL_MAY_IMPORT = ("digest.pipeline", "digest.subscriptions", "digest.config", "digest.records", *SHELLS,
                    "digest.mail.sink")
# Same-layer imports across packages, each for a reason.
ALLOWED = {
    ("digest.ranking.listings", "digest.sources.file"),  # `digest rank` reads any listing format
    ("digest.cli", "digest.demo"), ("digest.cli", "digest.web.app"), ("digest.cli", "digest.scheduler"),  # it starts them
}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = path
    return out


def imports(path: Path) -> list[str]:
    """Every module a file imports (top level or inside functions), `from x import y` as x and x.y."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
    return found


def layer(module: str) -> int | None:
    best = None
    for prefix, n in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, n)
    return best[1] if best else None


def package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_module_has_a_layer():
    assert [m for m in modules() if m != "digest" and layer(m) is None] == []


def test_lower_layers_never_import_higher_ones():
    wrong = []
    known = modules()
    for name, path in known.items():
        mine = layer(name)
        for target in imports(path):
            if not target.startswith("digest.") or target not in known:
                continue
            theirs = layer(target)
            if theirs is None or mine is None or package(target) == package(name) or (name, target) in ALLOWED:
                continue
            if theirs >= mine:
                wrong.append(f"{name} (layer {mine}) imports {target} (layer {theirs})")
    assert wrong == []


@pytest.mark.parametrize("shell", SHELLS)
def test_shells_import_only_the_pipeline_subscriptions_and_config(shell):
    wrong = []
    for name, path in modules().items():
        if name == shell or name.startswith(shell + "."):
            for target in imports(path):
                if target.startswith("sqlalchemy") or (target.startswith("digest.") and not any(
                        target == ok or target.startswith(ok + ".") for ok in SHELL_MAY_IMPORT)):
                    wrong.append(f"{name} imports {target}")
    assert wrong == []


@pytest.mark.parametrize("room", ["digest.render", "digest.ranking", "digest.planning"])
def test_pure_stages_touch_no_database(room):
    for name, path in modules().items():
        if name.startswith(room):
            assert [t for t in imports(path) if t.startswith(("sqlalchemy", "digest.store"))] == [], name


def definitions(pattern: str) -> list[str]:
    rx = re.compile(pattern, re.M)
    return [f"{p.relative_to(ROOT)}" for p in PACKAGE.rglob("*.py") for _ in rx.finditer(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("what,pattern", [
    ("one rate limiter", r"^class RateLimiter\b"),
    ("one clock", r"^def utcnow\("),
    ("one frequency list", r"^FREQUENCIES\s*="),
    ("one list of day names", r"^WEEKDAYS\s*="),
    ("one mailable rule in SQL", r"^def mailable\("),
    ("one suppression lookup", r"^def suppressed\("),
    ("one subscriber loader", r"^def load\(session: Session, q"),
])
def test_one_rule_one_place(what, pattern):
    assert len(definitions(pattern)) == 1, (what, definitions(pattern))


def test_sessions_keep_the_default_expire_on_commit():
    assert definitions(r"expire_on_commit\s*=\s*False") == []


def test_only_the_ledger_writes_deliveries():
    writers = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if re.search(r"\b(insert|update|delete)\((Delivery|DeliveryItem)\b|^(?!class ).*\bDelivery(Item)?\(", text, re.M):
            writers.append(name)
    assert writers == ["digest.delivery.ledger"]
