"""How fast commands start: `digest --help`, `digest status` and `digest due` beside `python -c "import
click"` (the floor: an interpreter and click), in the same run. Each is a fresh process, run --runs
times after one warm-up (page cache warm); the median and the best are printed, with the target (0.3 s),
and the median CPU time (user + system) of the process: on a busy machine the wall time waits for a
core, the CPU time much less.

    .venv/bin/python benchmarks/bench_start.py [--runs 10]

`status` and `due` run against a fresh SQLite database with one subscriber, lexical ranker. The digest
package is byte-compiled first (as `pip install` does), so a checkout run under PYTHONDONTWRITEBYTECODE
does not time the compiling of its own sources.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.3


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(cmd: list[str], env: dict, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each run."""
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), cpu_seconds()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall.append(time.perf_counter() - t0)
        cpu.append(cpu_seconds() - c0)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    import digest  # where the package is: its .pyc files are written beside it, as an install has them

    compileall.compile_dir(Path(digest.__file__).parent, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="bench-start-"))
    (work / "config.toml").write_text(f'[database]\nurl = "sqlite:///{work / "digest.db"}"\n'
                                      '[digest]\nranker = "lexical"\n', encoding="utf-8")
    env = {**os.environ, "DIGEST_CONFIG": str(work / "config.toml"), "DIGEST_SECRET": "bench-" + "x" * 32}
    digest = [sys.executable, "-m", "digest.cli"]
    subprocess.run([*digest, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*digest, "subscribers", "add", "reader@example.org", "--topic", "graph neural networks"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    rows = [("python -c \"import click\" (floor)", [sys.executable, "-c", "import click"]),
            ("digest --help", [*digest, "--help"]),
            ("digest status", [*digest, "status"]),
            ("digest due", [*digest, "due"])]
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"| command | median of {args.runs} | best | target | CPU, median |")
    print("|---|---|---|---|---|")
    for label, cmd in rows:
        t, cpu = timed(cmd, env, args.runs)
        target = "" if "floor" in label else f"<= {TARGET} s"
        print(f"| `{label}` | {statistics.median(t):.3f} s | {min(t):.3f} s | {target} | "
              f"{statistics.median(cpu):.3f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
