"""The admin CLI: `digest COMMAND`. Each command is a thin shell over the use cases (digest.usecases)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from digest.cli.context import Ctx, FriendlyGroup, echo_json, pass_ctx, print_ingest, printable, user_errors
from digest.cli.progress import INGEST_STEPS, Steps
from digest.cli.ranking import eval_command, rank_command
from digest.cli.recovery import LEASE_STATES, deliveries_group, suppressions_group
from digest.cli.sending import run_command, send_command
from digest.cli.subscribers import subscribers_group
from digest.lazy import lazy

subscribers = lazy("digest.subscriptions.subscribers")
housekeeping = lazy("digest.usecases.housekeeping")
ingesting = lazy("digest.usecases.ingesting")
planning = lazy("digest.usecases.planning")
previewing = lazy("digest.usecases.previewing")
admin_status = lazy("digest.usecases.status")
stopping = lazy("digest.usecases.stopping")


@click.group(cls=FriendlyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="DIGEST_CONFIG",
              help="Config file (default: $DIGEST_CONFIG, else ./config.toml, else built-in defaults).")
@click.option("-v", "--verbose", count=True, help="Log more (-v: info, -vv: debug).")
@click.version_option(package_name="trending-digest")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Trending-papers digest: ingest listings, rank them per subscriber, send one email each.

    Quick start: `digest demo` runs everything on bundled sample listings with no config.
    """
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    ctx.obj = Ctx(config_path)


@main.command()
@pass_ctx
def init(ctx: Ctx) -> None:
    """Create the database, or upgrade it to the newest schema (back it up first)."""
    ctx.database("upgrade")
    found = ctx.found
    assert found is not None
    done = {"current": f"already at revision {found.head}",
            "older": f"upgraded from {found.revision} to {found.head}",
            "foreign": f"digest tables added (revision {found.head})"}.get(found.kind, "created (revision "
                                                                                       f"{found.head})")
    click.echo(f"database {done}: {found.where}")


# ------------------------------------------------------------------------------------------ ingest


@main.command()
@click.option("--source", "source", metavar="NAME", help="Only this configured source.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Re-pull from this date (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def ingest(ctx: Ctx, source: str | None, since, as_json: bool) -> None:
    """Pull listings from the configured sources and store new or changed papers.

    Example: digest ingest --source hf_daily --since 2024-10-20
    """
    doing = "storing the batch being read and the terms of what is stored, then stopping"
    with stopping.on_signals(doing=doing) as stop, Steps(INGEST_STEPS, enabled=not as_json) as steps:
        report = ingesting.ingest(ctx.new_db, ctx.settings, source=source,
                                  since=since.date() if since else None, progress=steps, stop=stop)
    rows = [vars(r) for r in report.sources]
    if as_json:
        echo_json({"sources": rows, "embedded": report.embedded, "notes": report.notes})
    else:
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        print_ingest(rows)
        if report.embedded:
            click.echo(f"embedded {report.embedded} papers for the hybrid ranker")
    if stop.is_set():
        click.echo(f"stopped by {stop.name}: what was read is stored ({report.new} new, {report.updated} "
                   "updated); the next `digest ingest` goes on from there", err=True)
        sys.exit(stop.exit_code)
    if any(r.get("error") for r in rows):
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_ctx
def sources(ctx: Ctx, as_json: bool) -> None:
    """List the configured sources: last success, last error, watermark and totals."""
    rows = ingesting.source_status(ctx.read_db, ctx.settings)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']} ({r['type']})")
        for key in ("last_success_at", "last_error_at", "last_error", "watermark", "total_fetched",
                    "total_new", "total_updated", "total_skipped"):
            if r.get(key) is not None:
                click.echo(f"  {key.replace('_', ' ')}: {r[key]}")



# ------------------------------------------------------------------------------- preview and send


@main.command()
@click.option("--subscriber", "email", help="Preview this subscriber's next digest.")
@click.option("--topic", "topics", multiple=True, help="Or preview for these topics.")
@click.option("--exclude", "excludes", multiple=True, help="Exclusions, with --topic.")
@click.option("--format", "fmt", type=click.Choice(["html", "text", "eml", "json"]), default="html",
              show_default=True,
              help="json: a team channel's webhook payload (eml: an inbox's message).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of stdout.")
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in a browser.")
@pass_ctx
def preview(ctx: Ctx, email, topics, excludes, fmt, out, open_browser) -> None:
    """Render a digest without sending or storing anything.

    Examples: digest preview --subscriber ada@example.org --format eml;
    digest preview --topic "graph neural networks" --out gnn.html --open
    """
    if not email and not topics:
        raise click.UsageError("give --subscriber EMAIL or at least one --topic")
    wrong = click.UsageError("--format json is for a team channel (--subscriber KIND:HASH), eml for an inbox")
    if fmt in ("eml", "json") and (fmt == "json") != bool(email and subscribers.is_channel(email)):
        raise wrong  # what the name given says, before anything is read
    ctx.check_templates()
    shown = previewing.preview(ctx.read_db, ctx.settings, email=subscribers.key(email) if email else None,
                               topics=topics, excludes=excludes)
    if fmt in ("eml", "json") and fmt != shown.media:
        raise wrong  # what the channel that reaches them sends
    rendered = shown.rendered
    body = {"html": rendered.html, "text": rendered.text, "eml": shown.data.decode("utf-8"),
            "json": shown.data.decode("utf-8")}[fmt]
    if open_browser and not out:
        out = str(Path("digest-preview.html").resolve()) if fmt == "html" else None
    if out:
        Path(out).write_text(body, encoding="utf-8")
        click.echo(f"wrote {out} ({rendered.shown} papers: {rendered.subject})", err=True)
        if open_browser:
            import webbrowser  # (and its subprocess machinery) only when asked

            webbrowser.open(Path(out).resolve().as_uri())
    else:
        click.echo(body, nl=False)



@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (for monitoring).")
@pass_ctx
def status(ctx: Ctx, as_json: bool) -> None:
    """Papers, subscribers, last fetch per source, last edition, failures, scheduler jobs."""
    data = admin_status.status(ctx.reads(), ctx.settings)
    if as_json:
        echo_json(data)
        return
    click.echo(f"database: {data['database']}")
    click.echo(f"papers: {data['papers']}")
    click.echo("subscribers: " + (", ".join(f"{n} {k}" for k, n in data["subscribers"].items()) or "none"))
    click.echo("deliveries: " + (", ".join(f"{n} {k}" for k, n in data["deliveries"].items()) or "none"))
    click.echo(f"last edition sent: {data['last_sent_at'] or 'never'}")
    for s in data["sources"]:
        click.echo(f"source {s['name']}: last success {s['last_success_at'] or 'never'}"
                   + (f", last error {s['last_error']}" if s.get("last_error") else ""))
    for f in data["recent_failures"]:
        click.echo(f"failed: {printable(f['email'])} {f['period']}: {printable(f['error'])}")
    if data["suppressed"]:
        click.echo(f"suppressed addresses: {data['suppressed']} (`digest suppressions list`)")
    for h in data["leases"]:
        click.echo(f"lease: {h['deliveries']} deliveries held by {printable(h['worker'])} "
                   f"({LEASE_STATES[h['state']]}) until {h['until'] or '?'}")
    for j in data["jobs"]:
        last = (f"last {'ok' if j['last_ok'] else 'FAILED'} {j['last_finished_at']:%Y-%m-%d %H:%M:%S %Z}: "
                f"{j['last_summary']}" if j["last_finished_at"] else "never run")
        nxt = f"{j['next_run_at']:%Y-%m-%d %H:%M:%S %Z}" if j["next_run_at"] else "(no scheduler running)"
        click.echo(f"job {j['job']}: next {nxt}; {last}")


# -------------------------------------------------------------------------------------------- demo


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="demo", show_default=True,
              help="Folder for the demo database and received mail (never your own database).")
def demo(directory: str) -> None:
    """Run the whole product on bundled sample listings: no network, no config.

    Fresh SQLite database in DIR, three demo subscribers, a real SMTP round trip to an in-process
    SMTP server, received messages written to DIR/outbox.
    """
    from digest.demo import run_demo

    try:
        rows, outbox, ranked = run_demo(Path(directory))
    except (*user_errors(), RuntimeError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"\nRanked by {ranked}.")
    click.echo(f"\n{'subscriber':<24} {'papers':>6}  {'top paper':<58} file")
    for r in rows:
        click.echo(f"{r['email']:<24} {r['papers']:>6}  {r['top'][:58]:<58} {r['file']}")
    click.echo(f"\nOpen the HTML digests in a browser: {outbox.resolve()}/*.html")


# ------------------------------------------------------------------------- web and mailto unsubscribes


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@pass_ctx
def serve(ctx: Ctx, host: str, port: int) -> None:
    """Run the subscriber web app: subscribe, confirm, preferences, unsubscribe, archive, Atom feeds,
    /healthz and Prometheus /metrics (for the networks in metrics.allow).

    Links in emails use web.base_url from the config; put a TLS proxy in front for https.
    """
    from digest.web.app import serve as run_server

    ctx.check_templates()
    run_server(ctx.settings, ctx.db, host=host, port=port)


@main.group("unsubscribes")
def unsubscribes_group() -> None:
    """Handle the mailto: alternative of List-Unsubscribe."""


@unsubscribes_group.command("process")
@click.option("--maildir", "maildirs", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A Maildir receiving mail.unsubscribe_mailto (messages are marked seen once handled).")
@click.option("--mbox", "mboxes", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="An mbox file.")
@pass_ctx
def unsubscribes_process(ctx: Ctx, maildirs, mboxes) -> None:
    """Unsubscribe the sender of each "unsubscribe" message in a mailbox."""
    from digest.subscriptions.unsubscribes import process

    if not maildirs and not mboxes:
        raise click.UsageError("give --maildir PATH or --mbox PATH")
    r = process(ctx.db, maildirs, mboxes)
    click.echo(f"read {r.read}: unsubscribed {r.unsubscribed}, already {r.already}, unknown {r.unknown}, "
               f"skipped {r.skipped}")


# ---------------------------------------------------------------------------------------- schedule


@main.command("scheduler")
@click.option("--metrics-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Serve Prometheus /metrics on this port (default metrics.scheduler_port; 0: off).")
@pass_ctx
def scheduler_command(ctx: Ctx, metrics_port: int | None) -> None:
    """Run the scheduler in the foreground (for systemd or a container).

    Ingests each source on its `schedule`, plans and sends the editions that are due every
    scheduler.tick_seconds, and does housekeeping daily. SIGTERM or Ctrl-C: finish the message in
    flight, hand back the rest, exit 0. See "The scheduler" in the README.
    """
    from digest.scheduler import serve, triggers

    triggers(ctx.settings)  # a bad cron string is the config's error, named before the database is opened
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logging.getLogger("digest").setLevel(logging.INFO)  # a daemon logs one line per run
    ctx.check_templates()
    serve(ctx.settings, ctx.db, metrics_port=metrics_port)


@main.command()
@click.option("--at", "at", metavar="ISO-DATETIME",
              help="The instant to check (default: now; no offset: UTC).")
@click.option("--subscriber", "email", help="Only this subscriber.")
@click.option("--all", "show_all", is_flag=True, help="Also list who is not due, and why.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_ctx
def due(ctx: Ctx, at: str | None, email: str | None, show_all: bool, as_json: bool) -> None:
    """List who is due for an edition at an instant, and why. Sends and stores nothing.

    Example: digest due --at 2026-03-29T07:30:00+02:00 --all
    """
    now = planning.instant(at)
    if email:
        email = subscribers.get(ctx.read_db, email).email  # an unknown subscriber is one line, not "0 due"
    rows = planning.due_at(ctx.reads(quick=not email), now, email=email)
    shown = rows if show_all else [r for r in rows if r["due"]]
    if as_json:
        echo_json({"at": now.isoformat(), "due": sum(r["due"] for r in rows), "subscribers": shown})
        return
    for r in shown:
        click.echo(f"{printable(r['email']):<32} {'due' if r['due'] else 'not due':<7}  "
                   f"{r['period'] or '-':<10}  "
                   f"{printable(r['schedule']):<40} {printable(r['reason'])}")
    n = sum(r["due"] for r in rows)
    click.echo(f"{n} due, {len(rows) - n} not due at {now.isoformat()}")


@main.group("bounces")
def bounces_group() -> None:
    """Read bounce reports and complaints; suppress addresses by policy."""


@bounces_group.command("process")
@click.option("--maildir", "maildirs", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A Maildir receiving bounces (read only; reading it again counts nothing twice).")
@click.option("--mbox", "mboxes", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="An mbox file.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_ctx
def bounces_process(ctx: Ctx, maildirs, mboxes, as_json: bool) -> None:
    """Record delivery status notifications (RFC 3464) and complaints (ARF), then apply the policy:
    mail.bounce_hard_limit hard or mail.bounce_soft_limit soft bounces, or one complaint, suppress.

    Example: digest bounces process --maildir ~/Maildir/.bounces
    """
    if not maildirs and not mboxes:
        raise click.UsageError("give --maildir PATH or --mbox PATH")
    report = housekeeping.process_bounces(ctx.db, ctx.settings, maildirs, mboxes)
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(report.summary())


main.add_command(subscribers_group, "subscribers")
main.add_command(suppressions_group, "suppressions")
main.add_command(deliveries_group, "deliveries")
main.add_command(send_command, "send")
main.add_command(run_command, "run")
# TODO(merge): `digest rank` and `digest eval` are rewritten on another branch
main.add_command(rank_command, "rank")
main.add_command(eval_command, "eval")


if __name__ == "__main__":
    main()
