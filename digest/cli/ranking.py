"""Admin commands over the ranker: `digest rank` and `digest eval` (registered on the CLI group by cli.py).

Each is one call into the evaluation room (digest.evaluation: tryout.tryout, static.run, month.run_month,
...) and the printing of its result."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.context import LazyChoice
from digest.lazy import lazy

# loaded when `rank` or `eval` runs
data = lazy("digest.evaluation.data")
month = lazy("digest.evaluation.month")
static = lazy("digest.evaluation.static")
tryout = lazy("digest.evaluation.tryout")


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
        result = tryout.tryout(listings, topics=topics, queries=queries, limit=limit, ranker=ranker)
    except tryout.TryoutError as err:
        raise click.ClickException(str(err)) from err
    for line in tryout.json_lines(result) if as_json else tryout.text_lines(result):
        click.echo(line)


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
    type=LazyChoice(lambda: list(static.RANKERS)),
    help="Ranker(s) to measure (repeatable). Default: every ranker installed.",
)
@click.option(
    "--seeded",
    is_flag=True,
    help="Instead: each topic's first 5 relevant papers as a profile's seeds (no topic phrase); the "
    "digest's nDCG@10 beside the topic-phrase digest, on the other papers.",
)
@click.option(
    "--feedback",
    is_flag=True,
    help="Simulated readers judge digest 1; measure digest 2 for each feedback method (FEEDBACK.md).",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 50),
    is_flag=False,
    flag_value=6,
    help="Instead: a month of digests (FEEDBACK.md): readers judge N digests of 10 (--rounds alone: 6); "
    "nDCG@10 of each digest and recall, per reader and feedback method, beside reference methods.",
)
@click.option(
    "--model",
    help="Sentence-transformers model (name in the local cache, or directory) for the rankers that embed; "
    "default: the bundled all-MiniLM-L6-v2.",
)
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object: {"rows": [{"name", "ndcg@10", ...}]}.')
def eval_command(dataset: Path, topics_path: Path, rankers: tuple[str, ...], seeded: bool, feedback: bool,
                 rounds: int | None, model: str | None, as_json: bool) -> None:
    """Measure nDCG@10, P@10 and MAP@100 of the rankers beside the published baselines."""
    if feedback and rankers:
        raise click.UsageError("--feedback measures the default ranker's feedback methods: leave out "
                               "--ranker")
    try:
        if seeded:
            if rankers or feedback or model or rounds:
                raise click.UsageError("--seeded measures the digest's own (lexical) ranking: no --ranker, "
                                       "--feedback, --rounds or --model")
            result = static.seeded_run(dataset, topics_path)
            click.echo(static.seeded_json(result) if as_json else static.seeded_text(result))
            return
        if rounds is not None:
            if rankers or model or feedback:
                raise click.UsageError("--rounds measures the planner's own ranking: no --ranker, "
                                       "--feedback or --model")
            months = month.run_month(dataset, topics_path, rounds)
            click.echo(month.month_json(months) if as_json else month.month_text(months))
            return
        if feedback and model:
            raise click.UsageError("--feedback measures the planner's feedback methods on the bundled model: "
                                   "no --model")
        report = static.run_feedback(dataset, topics_path) if feedback else static.run(dataset, topics_path,
                                                                                       rankers, model=model)
    except data.EvalError as err:
        raise click.ClickException(str(err)) from err
    click.echo(static.report_json(report) if as_json else static.report_text(report))
