"""Speed work: modules imported when first used, so `digest --help`, `digest status` and `digest due`
start without numpy, scipy, jinja2, the ranking or the mail stack (issue 25: <= 0.3 s).

Contract: `lazy(name)` returns the module `name`; its code runs on the first attribute access
(importlib's LazyLoader), so a module-level `planning = lazy("digest.usecases.planning")` reads and
calls like `from digest.usecases import planning`. tests/test_layout.py counts `lazy("...")` as an
import, so the layering rules hold for them too; tests/test_startup.py checks what `--help` loads.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

