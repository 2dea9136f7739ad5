"""`digest subscribers update`: change a subscriber's topics (and their weights), schedule and cadence
(a minimum of papers per edition, best of the week) in place; registered on the `subscribers` group by
cli/__init__.py. One call into `subscriptions.subscribers.change`, which holds every rule."""

from __future__ import annotations

import click

from digest import wording
from digest.lazy import lazy
from digest.records import FREQUENCIES, Subscriber

subscribers = lazy("digest.subscriptions.subscribers")
profile = lazy("digest.subscriptions.profile")

MIN_PAPERS_HELP = ("Skip an edition with fewer papers above the bar than this; the skipped day's papers "
                   "roll over to the next edition.")
BEST_OF_WEEK_HELP = "Weekly only: the best of the whole week's papers, ranked without favouring the newest."
TOPIC_HELP = ('A topic phrase, with its weight if it matters more or less: "diffusion models=2" gets twice '
              "the share of the digest (0.1 to 10; default 1). Repeat for more.")


def cadence_line(v: Subscriber) -> str:
    """How a subscriber's digest comes, in one line (what add and update print)."""
    return wording.cadence_line(v.email, v.schedule, v.best_of_week, v.min_papers)


@click.command("update")
@click.argument("email")
@click.option("--topic", "topics", multiple=True, help=TOPIC_HELP + " Replaces the topics.")
@click.option("--frequency", type=click.Choice(FREQUENCIES))
@click.option("--weekday", help="Day of a weekly digest.")
@click.option("--timezone", help="IANA time zone, e.g. Europe/Paris.")
@click.option("--hour", type=click.IntRange(0, 23), help="Local delivery hour.")
@click.option("--max-items", type=click.IntRange(1, 100), help="Papers per digest.")
@click.option("--min-papers", type=click.IntRange(0, 100), help=MIN_PAPERS_HELP + " 0 removes the minimum.")
@click.option("--best-of-week/--no-best-of-week", default=None, help=BEST_OF_WEEK_HELP)
@click.pass_obj
def subscribers_update(ctx, email: str, **options) -> None:
    """Change a subscriber's topics, schedule or cadence; what is not given stays as it is.

    Example: digest subscribers update ada@example.org --frequency weekly --weekday friday --best-of-week
    --min-papers 3; digest subscribers update ada@example.org --topic "diffusion models=3" --topic GNN
    """
    given = {k: v for k, v in options.items() if v is not None and v != ()}
    if not given:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    if given.get("min_papers") == 0:
        given["min_papers"] = None
    v = subscribers.change(ctx.db, email, profile.ProfileChange(**given))
    click.echo(f"updated {cadence_line(v)}")
    if "topics" in given:
        click.echo(f"topics: {'; '.join(v.written_topics) or '(none: trending)'}")
