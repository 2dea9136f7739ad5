"""`make bench`: run every benchmarks/bench_*.py with its default sizes and print their tables.

Each benchmark compares the way the product does it against the naive way (and, where one exists,
against a ceiling such as the SMTP sink's own speed). Pass a name to run one: run_all.py render
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    wanted = set(sys.argv[1:])
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"\n== {name} ({script.name}) ==", flush=True)
        failed += subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
