"""`digest subscribers ...`: add, list, show, remove, import and export subscribers (and, registered
here from their modules, seed, follow, unfollow and update)."""

from __future__ import annotations

import sys

import click

from digest import wording
from digest.cli.cadence import (
    BEST_OF_WEEK_HELP,
    MIN_PAPERS_HELP,
    TOPIC_HELP,
    cadence_line,
    subscribers_update,
)
from digest.cli.context import Ctx, LazyChoice, echo_json, pass_ctx, printable
from digest.cli.profile import follow_command, seed_command, unfollow_command
from digest.cli.progress import Progress
from digest.lazy import lazy
from digest.records import FREQUENCIES, SubscriberStatus, written_topic

subscriber_csv = lazy("digest.subscriptions.subscriber_csv")
subscribers = lazy("digest.subscriptions.subscribers")
profile = lazy("digest.subscriptions.profile")
admin_status = lazy("digest.usecases.status")
recovery = lazy("digest.usecases.recovery")
stopping = lazy("digest.usecases.stopping")


@click.group("subscribers")
def subscribers_group() -> None:
    """Add, list, show, remove, import and export subscribers."""


@subscribers_group.command("add")
@click.argument("email", required=False)
@click.option("--webhook", metavar="URL", help="A team channel instead of an inbox: its incoming-webhook URL "
              "(kept secret: stored sealed, shown redacted); '-' reads it from standard input, out of "
              "the shell history and `ps`.")
@click.option("--kind", type=LazyChoice(lambda: subscribers.webhook_kinds()),
              help="The webhook's service, with --webhook.")
@click.option("--topic", "topics", multiple=True, help=TOPIC_HELP)
@click.option("--exclude", "excludes", multiple=True, help="Leave out papers matching this phrase.")
@click.option("--frequency", type=click.Choice(FREQUENCIES), default="daily", show_default=True)
@click.option("--weekday", default="monday", show_default=True, help="Day of a weekly digest.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone, e.g. Europe/Paris.")
@click.option("--hour", type=click.IntRange(0, 23), default=8, show_default=True, help="Local delivery hour.")
@click.option("--max-items", type=click.IntRange(1, 100), help="Papers per digest (default from config).")
@click.option("--name", help="Display name used in the To: header.")
@click.option("--author", "authors", multiple=True,
              help="Follow this author (\"Yann LeCun\", \"Y. LeCun\"); repeat for more.")
@click.option("--min-papers", type=click.IntRange(1, 100), help=MIN_PAPERS_HELP)
@click.option("--best-of-week", is_flag=True, help=BEST_OF_WEEK_HELP)
@pass_ctx
def subscribers_add(ctx: Ctx, email: str | None, webhook: str | None, kind: str | None, topics, excludes,
                    frequency,
                    weekday, timezone, hour, max_items, name, authors, min_papers, best_of_week) -> None:
    """Add an active subscriber: an email address, or a team channel
    (--webhook URL --kind slack|discord|generic).

    Example: digest subscribers add ada@example.org --topic "diffusion models" --timezone Europe/London
    """
    if (email is None) == (webhook is None):
        raise click.UsageError("give an EMAIL address or --webhook URL (one of them)")
    if (webhook is None) != (kind is None):
        raise click.UsageError("--webhook and --kind go together")
    change = profile.ProfileChange(topics=topics, excludes=excludes, frequency=frequency, weekday=weekday,
                            timezone=timezone, hour=hour, max_items=max_items, name=name, authors=authors,
                            min_papers=min_papers, best_of_week=best_of_week)
    if webhook == "-":
        webhook = sys.stdin.readline().strip()
    if webhook is not None:
        v = subscribers.add_webhook(ctx.new_db, ctx.settings.secret(), webhook, kind, change)
    else:
        v = subscribers.add(ctx.new_db, email, change)
    blocked = recovery.suppressions(ctx.read_db, v.email)
    if blocked:  # on the list, but never mailed until the admin lifts it
        b = blocked[0]
        click.echo(f"{v.email} is suppressed ({b.reason} since {b.since:%Y-%m-%d}: {printable(b.cause)}): "
                   f"subscribed, but nothing is sent to it until `digest suppressions lift {v.email}`")
    elif v.min_papers or v.best_of_week:
        click.echo(f"added {cadence_line(v)} ({len(v.topics)} topics)")
    else:
        who = f"{v.email} {v.webhook}" if v.webhook else v.email
        click.echo(f"added {who} ({len(v.topics)} topics, {wording.frequency_at(v.schedule)})")


@subscribers_group.command("list")
@click.option("--status", type=click.Choice([str(s) for s in SubscriberStatus]))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_ctx
def subscribers_list(ctx: Ctx, status: str | None, as_json: bool) -> None:
    """List subscribers."""
    rows = subscribers.list_all(ctx.read_db, status)
    blocked = recovery.suppressed_among(ctx.read_db, [r.email for r in rows])
    if as_json:
        echo_json([{**r.as_dict(), "suppressed": blocked.get(r.email)} for r in rows])
        return
    for r in rows:
        where = f"  [{r.webhook}]" if r.webhook else ""
        shown = "suppressed" if r.email in blocked and r.status != "unsubscribed" else r.status
        click.echo(f"{printable(r.email):<36} {shown:<12} {r.frequency:<8} {r.hour:02d}:00 "
                   f"{printable(r.timezone):<20} "
                   f"{printable('; '.join(r.written_topics)) or '(trending)'}{where}")
    click.echo(f"{len(rows)} subscriber{'s' if len(rows) != 1 else ''}")


@subscribers_group.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_ctx
def subscribers_show(ctx: Ctx, email: str, as_json: bool) -> None:
    """Show one subscriber: profile, recent deliveries, feedback."""
    data = admin_status.subscriber_profile(ctx.read_db, email)
    if as_json:
        echo_json(data)
        return
    keys = ("email", "channel", "webhook") if data["channel"] != "email" else ("email",)
    for key in (*keys, "name", "status", "frequency", "weekday", "hour", "timezone", "max_items",
                "min_papers",
                "best_of_week", "created_at", "suppressed"):
        click.echo(f"{key}: {printable(data[key])}")
    no_topic = "(none: papers like the seeded ones)" if data["seeds"] else "(none: trending)"
    topics = map(written_topic, data["topics"], data["topic_weights"])
    click.echo(f"topics: {printable('; '.join(topics)) or no_topic}")
    click.echo(f"excludes: {printable('; '.join(data['excludes'])) or '(none)'}")
    click.echo(f"follows: {printable('; '.join(data['authors'])) or '(no author)'}")
    click.echo(f"seeded papers: {len(data['seeds'])}")
    for p in data["seeds"]:
        click.echo(f"  {printable(p['arxiv_id'] or '-'):<18} {printable(p['title'])}")
    fb = data["feedback"]
    click.echo(f"feedback: {fb['more_like_this']} more like this, {fb['less_like_this']} less like this")
    click.echo("recent deliveries:" if data["deliveries"] else "recent deliveries: none")
    for d in data["deliveries"]:
        click.echo(f"  {d['period']}  {d['status']:<10} {printable(d['subject'] or d.get('note') or '')}")


@subscribers_group.command("remove")
@click.argument("email")
@click.confirmation_option(prompt="Delete this subscriber and their history?")
@pass_ctx
def subscribers_remove(ctx: Ctx, email: str) -> None:
    """Delete a subscriber and their history."""
    gone = subscribers.remove(ctx.db, email)
    click.echo(f"removed {gone.email} {gone.webhook}" if gone.webhook else f"removed {email}")


@subscribers_group.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
@pass_ctx
def subscribers_import(ctx: Ctx, csv_file) -> None:
    """Add or update subscribers from a CSV file (the layout `export` writes; topics split by ';')."""
    doing = "finishing the rows being written, then stopping"
    with stopping.on_signals(doing=doing) as stop, Progress("importing subscribers") as progress:
        added, updated, errors = subscriber_csv.import_csv(ctx.new_db, csv_file, progress=progress, stop=stop)
    for e in errors:
        click.echo(f"skipped {e}", err=True)
    click.echo(f"added {added}, updated {updated}, skipped {len(errors)}")
    if stop.is_set():
        click.echo(f"stopped by {stop.name} before the end of the file: importing it again finishes it "
                   "(the rows written already are updated in place)", err=True)
        sys.exit(stop.exit_code)
    if errors:
        sys.exit(1)


@subscribers_group.command("export")
@click.argument("csv_file", type=click.File("w", encoding="utf-8"), default="-")
@pass_ctx
def subscribers_export(ctx: Ctx, csv_file) -> None:
    """Write all subscribers as CSV (to a file, or standard output)."""
    n = subscriber_csv.export_csv(ctx.read_db, csv_file)
    if csv_file is not sys.stdout and getattr(csv_file, "name", "-") != "<stdout>":
        click.echo(f"exported {n} subscribers", err=True)


subscribers_group.add_command(seed_command, "seed")
subscribers_group.add_command(follow_command, "follow")
subscribers_group.add_command(unfollow_command, "unfollow")
subscribers_group.add_command(subscribers_update, "update")
