"""Admin commands over the ranker: `digest rank` and `digest eval` (registered on the CLI group by cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from digest.ranking import evaluate as ev
from digest.ranking import semantic
from digest.ranking.listings import ListingsError, read_papers
from digest.ranking.ranker import rank
from digest.records import Profile


@click.command("rank")
@click.option(
    "--listings",
    "listings",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Papers to rank: TSV/CSV with title and abstract columns, or any `file` source format.",
)
@click.option("--topic", "topics", multiple=True, help="A topic of one subscriber (repeatable).")
@click.option(
    "--queries",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file with one query per line, each ranked on its own.",
)
@click.option(
    "--limit", default=10, show_default=True, type=click.IntRange(1, 10_000), help="Papers per query."
)
@click.option(
    "--ranker",
    type=click.Choice(["auto", "lexical", "hybrid"]),
    default="auto",
    show_default=True,
    help="hybrid: lexical + MiniLM (needs the semantic extra); auto: hybrid when installed.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per query: {query, ranking: [{id, score, why}]}."
)
def rank_command(
    listings: Path, topics: tuple[str, ...], queries: Path | None, limit: int, ranker: str, as_json: bool
) -> None:
    """Rank a listings file for one subscriber's topics, or for each line of a queries file."""
    if bool(topics) == bool(queries):
        raise click.UsageError("give either --topic (one or more) or --queries FILE")
    try:
        papers, ids, rejected = read_papers(listings)
    except ListingsError as err:
        raise click.ClickException(str(err)) from err
    if queries is not None:
        try:
            lines = [q.strip() for q in queries.read_text(encoding="utf-8").splitlines()]
        except OSError as err:
            raise click.ClickException(f"cannot read {queries}: {err.strerror or err}") from err
        groups = [[q] for q in lines if q and not q.startswith("#")]
    else:
        groups = [[t for t in topics if t.strip()]]
    if not papers:
        raise click.ClickException(f"{listings}: no papers found ({rejected} entries rejected)")
    profiles = [Profile(subscriber_id=i, topics=g, max_items=limit) for i, g in enumerate(groups)]
    try:
        hybrid = semantic.wanted(ranker)
    except RuntimeError as err:
        raise click.ClickException(str(err)) from err
    vectors = semantic.PaperVectors.of([(p.title, p.abstract) for p in papers]) if hybrid else None
    picks = rank(papers, profiles, vectors=vectors)
    for i, group in enumerate(groups):
        query = "; ".join(group)
        if as_json:
            ranking = [{"id": ids[p.paper_id], "score": round(p.score, 4), "why": p.why} for p in picks[i]]
            click.echo(json.dumps({"query": query, "ranking": ranking}, ensure_ascii=False))
            continue
        click.echo(f"== {query} ({len(picks[i])} of {len(papers)} papers)")
        for n, p in enumerate(picks[i], 1):
            title = papers[p.paper_id].title
            title = title if len(title) <= 70 else title[:69] + "…"
            click.echo(f"{n:>3}. {p.score:.3f}  {ids[p.paper_id]:<14} {title}")
            click.echo(f"     {p.why}")


@click.command("eval")
@click.option(
    "--dataset",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labelled paper list (TSV/CSV with title, abstract and keywords columns).",
)
@click.option(
    "--topics",
    "topics_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Topics file: one topic per line (a tab and a count may follow).",
)
@click.option(
    "--ranker",
    "rankers",
    multiple=True,
    type=click.Choice(list(ev.RANKERS)),
    help="Ranker(s) to measure (repeatable). Default: every ranker installed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def eval_command(dataset: Path, topics_path: Path, rankers: tuple[str, ...], as_json: bool) -> None:
    """Measure nDCG@10, P@10 and MAP@100 of the rankers beside the published baselines."""
    try:
        data = ev.load_dataset(dataset)
        topics = ev.load_topics(topics_path)
    except ListingsError as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:
        raise click.ClickException(f"cannot read {topics_path}: {err.strerror or err}") from err
    if not topics:
        raise click.ClickException(f"{topics_path}: no topics")
    names = list(rankers) or ev.available_rankers()
    if semantic.available():  # "default" is the hybrid then
        import tempfile

        # a dataset's embeddings are computed once and kept for reruns (minutes of CPU otherwise)
        semantic.cache_dir = semantic.cache_dir or Path(tempfile.gettempdir()) / "digest-eval-embeddings"
    results = []
    for name in names:
        try:
            results.append(ev.evaluate(data, topics, ev.RANKERS[name].scorer, name))
        except ev.RankerUnavailable as err:
            raise click.ClickException(str(err)) from err
    if not results or results[0].topics == 0:
        raise click.ClickException("no topic has a relevant paper in the dataset")
    if as_json:
        out = {
            "dataset": str(dataset),
            "papers": len(data.ids),
            "topics": results[0].topics,
            "results": [
                {"ranker": r.ranker, "ndcg@10": r.ndcg10, "p@10": r.p10, "map@100": r.map100} for r in results
            ],
            "baselines": [
                {"ranker": k, "ndcg@10": n, "p@10": p, "map@100": m} for k, (n, p, m) in ev.BASELINES.items()
            ],
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{len(data.ids)} papers, {results[0].topics} topics (baselines: measured on ICLR 2021)")
    click.echo(ev.format_table(results))
