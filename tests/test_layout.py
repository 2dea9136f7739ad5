"""The architecture as a test: the flow runs one way, the shells stay thin, each rule lives once.

Layers, lowest first (README "Layout"): records; config, metrics and the throughput knobs; ranking,
render, mail, store and the source parsers; the channel seam (delivery.channel, delivery.channels);
ingest, subscriptions, planning; delivery; the use cases; the shells (cli, web, scheduler, demo).
A module may import from a lower layer or from its own package, never from a higher layer. Each shell
calls the use cases it is listed with, and no module hands on a module it imported (`from x import
y` names y where it lives).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "digest"

LAYERS = {  # the most specific prefix wins
    "digest.records": 0, "digest.lazy": 0, "digest.read_ahead": 0, "digest.background": 0,
    "digest.config": 1, "digest.metrics": 1, "digest.throughput": 1, "digest.wording": 1,
    "digest.ranking": 2, "digest.render": 2, "digest.mail": 2, "digest.store": 2, "digest.sources": 2,
    # the channel seam sits below subscriptions, which ask it about addresses (kinds, sealed or not)
    "digest.delivery.channel": 2.5, "digest.delivery.channels": 2.5,
    "digest.sources.ingest": 3, "digest.subscriptions": 3, "digest.planning": 3,
    "digest.delivery": 4,
    "digest.usecases": 5,
    "digest.evaluation": 5,  # measuring the ranker on labelled sets, trying it on listings: for the CLI only
    "digest.pipeline": 5.5,  # TODO(merge): the shim other branches' files import until they are merged
    "digest.cli": 6, "digest.web": 6, "digest.scheduler": 6, "digest.demo": 6,
}
SHELLS = ("digest.cli", "digest.web", "digest.scheduler", "digest.demo")
# Which use cases each shell calls (every shell may open the settings and the database: setup).
USE_CASES = {
    "digest.cli": ("ingesting", "planning", "sending", "previewing", "status", "housekeeping", "seeding",
                   "stopping", "recovery"),
    "digest.web": ("pages", "feeds", "seeding", "monitoring"),
    "digest.scheduler": ("ingesting", "sending", "housekeeping", "jobs", "monitoring", "stopping"),
    "digest.demo": ("ingesting", "sending", "pages"),
}
# Besides: subscriptions, config, the plain records and their words; the demo also runs its in-process SMTP
# server, and the CLI starts the other shells.
SHELL_MAY_IMPORT = ("digest.subscriptions", "digest.config", "digest.records", "digest.wording",
                    "digest.lazy",
                    "digest.usecases.setup",
                    *SHELLS,
                    "digest.mail.sink")
# Besides its use cases, the CLI runs the evaluation room (`digest eval`, `digest rank`).
SHELL_EXTRA = {"digest.cli": ("digest.evaluation",)}
MERGE_PENDING: set[tuple[str, str]] = set()  # TODO(merge): (module, shim) pairs of branches not merged yet
# Same-layer imports across packages, each for a reason.
ALLOWED = {
    # it starts them
    ("digest.cli", "digest.demo"), ("digest.cli", "digest.web.app"), ("digest.cli", "digest.scheduler"),
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
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "lazy"
              and node.args and isinstance(node.args[0], ast.Constant)):  # digest.lazy: imported on first use
            found.append(node.args[0].value)
    return found


def layer(module: str) -> int | None:
    best = None
    for prefix, n in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix)
                                                                      > len(best[0])):
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
            same_package = package(target) == package(name)
            if theirs is None or mine is None or same_package or (name, target) in ALLOWED:
                continue
            if theirs >= mine:
                wrong.append(f"{name} (layer {mine}) imports {target} (layer {theirs})")
    assert wrong == []


def within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("shell", SHELLS)
def test_shells_import_only_their_use_cases_subscriptions_and_config(shell):
    allowed = (*SHELL_MAY_IMPORT, *SHELL_EXTRA.get(shell, ()),
               *(f"digest.usecases.{u}" for u in USE_CASES[shell]))
    wrong = []
    for name, path in modules().items():
        if within(name, [shell]):
            for target in imports(path):
                # `from digest.usecases import x`: x is checked as digest.usecases.x
                if target == "digest.usecases":
                    continue
                if target.startswith("sqlalchemy") or (target.startswith("digest.")
                                                       and not within(target, allowed)):
                    wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_every_use_case_has_a_shell():
    cases = {m.removeprefix("digest.usecases.") for m in modules() if m.startswith("digest.usecases.")}
    called = {u for uses in USE_CASES.values() for u in uses} | {"setup"}
    # embedding and jobs are called by other use cases (and jobs by the scheduler); preview_pool is the
    # pages' speed work, called by the pages use case; reads is what status and due read through, opened
    # by setup
    assert cases - called <= {"embedding", "preview_pool", "reads"}, cases - called


def bindings(path: Path) -> dict[str, str]:
    """The names a file binds to modules of the digest by importing them: name -> module."""
    known = modules()
    out = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update((a.asname, a.name) for a in node.names if a.asname and a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.update((a.asname or a.name, f"{node.module}.{a.name}") for a in node.names
                       if f"{node.module}.{a.name}" in known)
    return out


def test_no_module_hands_on_a_module_it_imported():
    """`from x import y`, `x.y` after `import x`: y is a module of x's own (x.y is its path), never a
    module x imported from elsewhere."""
    known = modules()
    bound = {name: bindings(path) for name, path in known.items()}
    wrong = []
    for name, path in [*known.items(), *((p.stem, p) for p in (ROOT / "tests").glob("*.py"))]:
        mine = bindings(path) if name not in bound else bound[name]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            via = []
            if isinstance(node, ast.ImportFrom) and node.module in bound:
                via = [(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value,
                                                                ast.Name) and node.value.id in mine:
                via = [(mine[node.value.id], node.attr)]
            for source, attr in via:
                real = bound.get(source, {}).get(attr)
                if real is not None and real != f"{source}.{attr}" and (name, source) not in MERGE_PENDING:
                    wrong.append(f"{name} takes {real} from {source}")
    assert wrong == []


@pytest.mark.parametrize("room", ["digest.render", "digest.ranking", "digest.planning"])
def test_pure_stages_touch_no_database(room):
    for name, path in modules().items():
        if name.startswith(room):
            assert [t for t in imports(path) if t.startswith(("sqlalchemy", "digest.store"))] == [], name


def definitions(pattern: str) -> list[str]:
    rx = re.compile(pattern, re.M)
    return [f"{p.relative_to(ROOT)}" for p in PACKAGE.rglob("*.py")
            for _ in rx.finditer(p.read_text(encoding="utf-8"))]


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
        if re.search(r"\b(insert|update|delete)\((Delivery|DeliveryItem)\b|^(?!class ).*\bDelivery(Item)?\(",
                     text, re.M):
            writers.append(name)
    assert writers == ["digest.delivery.ledger"]


def test_every_source_kind_has_its_module_and_the_bulk_sql_serves_only_the_ledger():
    """A source is its settings class (config.SOURCE_TYPES) and a module of its type's name with its
    `fetch`; the bulk SQL per dialect is the ledger's and nobody else's."""
    import importlib

    from digest.config import SOURCE_NAMES

    for name in SOURCE_NAMES:
        assert callable(importlib.import_module(f"digest.sources.{name}").fetch), name
    users = [name for name, path in modules().items() if "digest.delivery.bulk_sql" in imports(path)]
    assert users == ["digest.delivery.ledger"]


def test_no_module_is_over_500_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def test_only_the_shells_use_the_evaluation_room():
    """Measuring the ranker (digest.evaluation) is for the admin commands: no lower room imports it."""
    users = {name for name, path in modules().items() if not within(name, ["digest.evaluation", *SHELLS])
             and any(within(t, ["digest.evaluation"]) for t in imports(path))}
    assert users == set()
