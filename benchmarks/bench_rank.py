"""Ranking N subscribers against P papers: the batched ranker (index once, one sparse product for all
distinct topics, dense numpy per chunk of subscribers) against the naive way (index and score the
papers again for every subscriber).

    .venv/bin/python benchmarks/bench_rank.py [--subscribers 100000] [--papers 1000] [--naive 200] [--batch
    10000]
                                              [--hybrid]

Papers are the eval set's titles and abstracts when /work/shared/eval (or ../shared/eval) is there,
else synthetic ones. Subscribers have 1-5 topics drawn from realistic phrases; 10% have an exclude,
5% liked or disliked papers. The naive way is measured on --naive subscribers and extrapolated to N.
The batched way is also timed as a planner ranking in batches does it: build_corpus() once, then
rank_with() for each --batch subscribers (same picks asserted).
Peak memory is the process's maximum resident set (ru_maxrss), printed before and after each phase.
--hybrid also ranks with MiniLM vectors (the bundled int8 ONNX model), as digests do in every
install: the papers are embedded first (what ingest does once per paper, timed on its own line), then
a fresh process reads the vectors back and times rank() with them, topic embeddings and the model
included (its own peak RSS), as the planner does.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.evaluation.listings import read_table
from digest.ranking import rank
from digest.ranking.ranker import build_corpus, rank_with
from digest.records import Paper, Profile

TOPICS = """reinforcement learning|graph neural networks|GNN|self-supervised learning|meta-learning|
diffusion models|large language models|LLM|transformers|contrastive learning|federated learning|
differential privacy|adversarial robustness|neural architecture search|data augmentation|
continual learning|variational inference|knowledge distillation|object detection|image classification|
normalizing flows|pruning|domain adaptation|clustering|imitation learning|machine translation|
optimal transport|mutual information|fairness|calibration|active learning|few-shot learning|
generative adversarial networks|GAN|VAE|speech recognition|protein structure|retrieval augmented generation|
in-context learning|instruction tuning|RLHF|mixture of experts|quantization|sparse attention|
video generation|text-to-image|3D reconstruction|NeRF|robotics|multi-agent reinforcement learning|
offline reinforcement learning|causal inference|time series forecasting|anomaly detection|
recommender systems|question answering|code generation|mathematical reasoning|chain of thought|
interpretability|mechanistic interpretability|uncertainty estimation|bayesian optimization|
hyperparameter optimization|semi-supervised learning|representation learning|point clouds|
semantic segmentation|pose estimation|medical imaging|drug discovery|molecule generation|
graph representation learning|knowledge graphs|language models|vision transformers|ViT|CLIP|
multimodal learning|vision-language models|speech synthesis|audio generation|tabular data|
out-of-distribution detection|OOD|backdoor attacks|membership inference|watermarking|
efficient inference|distributed training|optimization|stochastic gradient descent|SGD|
neural tangent kernel|generalization bounds|implicit regularization|loss landscape|
energy-based models|score matching|flow matching|autoregressive models|tokenization|
long context|memory|world models|planning|model-based reinforcement learning|exploration""".replace("\n", "")


def load_papers(n: int) -> list[Paper]:
    now = datetime(2024, 10, 25, tzinfo=UTC)
    rng = random.Random(1)
    for base in (Path("/work/shared/eval"), Path(__file__).resolve().parents[2] / "shared" / "eval"):
        tsv = base / "iclr2021_paperlist.tsv"
        if tsv.exists():
            rows = read_table(tsv)[:n]
            break
    else:
        rows = []
    if rows:
        texts = [(r.title, r.abstract) for r in rows]
    else:  # synthetic: topic phrases in filler text
        topics = TOPICS.split("|")
        words = "model method data training results show propose learning network task performance".split()
        texts = []
        for i in range(n):
            t = rng.sample(topics, 2)
            body = " ".join(rng.choice(words) for _ in range(120))
            texts.append((f"{t[0].title()} for {t[1]} ({i})", f"We study {t[0]} and {t[1]}. {body}."))
    return [
        Paper(
            id=i,
            title=t,
            abstract=a,
            upvotes=int(rng.paretovariate(1.2)) - 1,
            published_at=now - timedelta(hours=rng.randint(0, 96)),
        )
        for i, (t, a) in enumerate(texts)
    ]


def make_profiles(n: int, n_papers: int) -> list[Profile]:
    rng = random.Random(2)
    topics = [t.strip() for t in TOPICS.split("|")]
    out = []
    for s in range(n):
        pr = Profile(subscriber_id=s, topics=rng.sample(topics, rng.randint(1, 5)), max_items=10)
        if rng.random() < 0.10:
            pr.excludes = [rng.choice(topics)]
        if rng.random() < 0.05:
            pr.liked = rng.sample(range(n_papers), 2)
            pr.disliked = rng.sample(range(n_papers), 1)
        out.append(pr)
    return out


def maxrss_mib() -> float:
    """Peak resident set of this process image: VmHWM (ru_maxrss would carry a parent's peak over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--papers", type=int, default=1000)
    ap.add_argument("--naive", type=int, default=200, help="subscribers ranked the naive way (extrapolated)")
    ap.add_argument("--batch", type=int, default=10_000, help="subscribers per rank_with() batch")
    ap.add_argument("--hybrid", action="store_true", help="also rank with MiniLM vectors (ONNX)")
    ap.add_argument("--vectors", help=argparse.SUPPRESS)  # internal: the hybrid run's own process
    args = ap.parse_args()
    if args.vectors:
        return rank_hybrid(args)

    papers = load_papers(args.papers)
    profiles = make_profiles(args.subscribers, len(papers))
    now = datetime(2024, 10, 25, 12, tzinfo=UTC)
    base = maxrss_mib()

    t = time.perf_counter()
    batched = rank(papers, profiles, now=now)
    batched_s = time.perf_counter() - t
    batched_rss = maxrss_mib()
    picks = sum(len(v) for v in batched.values())

    t = time.perf_counter()  # what a planner ranking in batches does: index once, rank batch by batch
    corpus = build_corpus(papers, now=now)
    corpus_s = time.perf_counter() - t
    batch = max(1, args.batch)
    t = time.perf_counter()
    for start in range(0, len(profiles), batch):
        part = rank_with(corpus, profiles[start : start + batch])
        assert all(part[s] == batched[s] for s in part)  # same max_items for all: the same picks
    batches_s = time.perf_counter() - t

    sample = profiles[: args.naive]
    t = time.perf_counter()
    for pr in sample:
        naive = rank(papers, [pr], now=now)
        assert naive[pr.subscriber_id] == batched[pr.subscriber_id]  # same answer, one at a time
    naive_s = (time.perf_counter() - t) * len(profiles) / max(1, len(sample))

    print(
        f"{len(papers)} papers, {len(profiles)} subscribers, {picks} picks; RSS before ranking {base:.0f} MiB"
    )
    print(f"{'method':<34} {'seconds':>9} {'ms/subscriber':>14} {'peak RSS MiB':>13}")
    print(
        f"{'batched rank()':<34} {batched_s:>9.2f} {1000 * batched_s / len(profiles):>14.3f} "
        f"{batched_rss:>13.0f}"
    )
    label = "build_corpus() once"
    print(f"{label:<34} {corpus_s:>9.2f} {'-':>14} {'-':>13}")
    label = f"rank_with() x{-(-len(profiles) // batch)} batches"
    print(f"{label:<34} {batches_s:>9.2f} {1000 * batches_s / len(profiles):>14.3f} {'-':>13}")
    label = f"naive loop (x{len(sample)}, extrapolated)"
    print(f"{label:<34} {naive_s:>9.1f} {1000 * naive_s / len(profiles):>14.3f} {'-':>13}")
    print(f"speed-up: {naive_s / batched_s:.0f}x")
    if args.hybrid:
        import subprocess
        import sys
        import tempfile

        import numpy as np

        from digest.ranking.semantic import PaperVectors

        t = time.perf_counter()
        vectors = PaperVectors.of([(p.title, p.abstract) for p in papers])
        embed_s = time.perf_counter() - t
        print(f"{'embed papers (once, at ingest)':<34} {embed_s:>9.2f} {'-':>14} {maxrss_mib():>13.0f}",
              flush=True)
        with tempfile.TemporaryDirectory() as tmp:  # rank in a fresh process, as the planner does:
            path = Path(tmp) / "vectors.npz"  # stored vectors read back, the model only embeds topics
            np.savez(path, whole=vectors.whole, sentences=vectors.sentences, counts=vectors.counts)
            subprocess.run([sys.executable, __file__, "--subscribers", str(args.subscribers), "--papers",
                            str(args.papers), "--vectors", str(path)], check=True)


def rank_hybrid(args: argparse.Namespace) -> None:
    """The hybrid ranking alone, in its own process, with vectors as stored at ingest."""
    import numpy as np

    from digest.ranking.semantic import PaperVectors

    papers = load_papers(args.papers)
    profiles = make_profiles(args.subscribers, len(papers))
    with np.load(args.vectors) as z:
        vectors = PaperVectors(z["whole"], z["sentences"], z["counts"])
    from digest.ranking import semantic

    t = time.perf_counter()
    semantic.embed_topics(["warm-up"])  # the first embedding (the session is made per call)
    print(f"{'load MiniLM (once per process)':<34} {time.perf_counter() - t:>9.2f} {'-':>14} "
          f"{maxrss_mib():>13.0f}")
    base = maxrss_mib()
    t = time.perf_counter()
    hybrid = rank(papers, profiles, now=datetime(2024, 10, 25, 12, tzinfo=UTC), vectors=vectors)
    hybrid_s = time.perf_counter() - t
    print(
        f"{'batched rank(), hybrid':<34} {hybrid_s:>9.2f} {1000 * hybrid_s / len(profiles):>14.3f} "
        f"{maxrss_mib():>13.0f}   ({sum(len(v) for v in hybrid.values())} picks; RSS before {base:.0f} MiB)"
    )

if __name__ == "__main__":
    main()
