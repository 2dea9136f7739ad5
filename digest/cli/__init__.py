"""The admin CLI: `digest COMMAND`. Each command is a thin shell over the use cases (digest.usecases)."""

from __future__ import annotations

import functools
import json
import logging
import sys
import webbrowser
from pathlib import Path

import click

from digest import config as config_mod
from digest import wording
from digest.cli.cadence import BEST_OF_WEEK_HELP, MIN_PAPERS_HELP, cadence_line, subscribers_update
from digest.cli.profile import follow_command, seed_command, unfollow_command
from digest.cli.ranking import eval_command, rank_command
from digest.records import FREQUENCIES, SubscriberStatus
from digest.subscriptions import subscriber_csv, subscribers
from digest.subscriptions.profile import ProfileChange
from digest.subscriptions.rules import SubscriberError
from digest.usecases import housekeeping, ingesting, planning, previewing, sending, setup
from digest.usecases import status as admin_status
from digest.usecases.sending import PassReport
from digest.usecases.setup import Database, Schema, SchemaError, SchemaState


class Ctx:
    """Settings and database, opened on first use so `--help` works anywhere."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._settings: config_mod.Settings | None = None
        self._db: Database | None = None
        self.found: SchemaState | None = None  # the schema the database had when opened

    @property
    def settings(self) -> config_mod.Settings:
        if self._settings is None:
            self._settings = setup.load_settings(self.config_path)
        return self._settings

    def database(self, schema: Schema) -> Database:
        if self._db is None:
            self._db, self.found = setup.open_database(self.settings, schema)
        return self._db

    @property
    def db(self) -> Database:
        """For writing commands: a fresh database gets the schema; any other must be current."""
        return self.database("create")

    @property
    def read_db(self) -> Database:
        """For reading commands: the database must be at the current schema; nothing is created."""
        return self.database("check")


pass_ctx = click.make_pass_decorator(Ctx)
USER_ERRORS = (config_mod.ConfigError, SchemaError, SubscriberError, LookupError, ValueError, OSError)


def friendly(fn):
    """Errors a user can cause end in one clear line and exit status 1, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except USER_ERRORS as err:
            raise click.ClickException(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
        except Exception as err:  # a database that cannot be reached, and the like
            if type(err).__module__.startswith("sqlalchemy"):
                raise click.ClickException(f"database error: {str(err).splitlines()[0]}") from None
            raise

    return wrapper


class FriendlyGroup(click.Group):
    """The `digest` group: whatever a user can get wrong, in a command or in converting its arguments
    (a path with a NUL byte, say), ends in one line through `friendly`, for every command at once."""

    def make_context(self, *args, **kwargs) -> click.Context:  # the group's own options (--config)
        return friendly(super().make_context)(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        return friendly(super().invoke)(ctx)


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def printable(value: object) -> str:
    """Stored text as it may reach a terminal: anything not printable (CR, LF, escapes, bidi overrides)
    is written as its Python escape, so a stored value can neither forge a line nor drive the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(value))


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = Ctx(config_path)


@main.command()
@pass_ctx
def init(ctx: Ctx) -> None:
    """Create the database, or upgrade it to the newest schema (back it up first)."""
    ctx.database("upgrade")
    found = ctx.found
    assert found is not None
    done = {"current": f"already at revision {found.head}", "older": f"upgraded from {found.revision} to {found.head}",
            "foreign": f"digest tables added (revision {found.head})"}.get(found.kind, f"created (revision {found.head})")
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
    report = ingesting.ingest(ctx.db, ctx.settings, source=source, since=since.date() if since else None)
    rows = [vars(r) for r in report.sources]
    if as_json:
        echo_json({"sources": rows, "embedded": report.embedded, "notes": report.notes})
    else:
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        _print_ingest(rows)
        if report.embedded:
            click.echo(f"embedded {report.embedded} papers for the hybrid ranker")
    if any(r.get("error") for r in rows):
        sys.exit(1)


def _print_ingest(rows: list[dict]) -> None:
    for r in rows:
        err = f"  error: {r['error']}" if r.get("error") else ""
        click.echo(f"{r['name']:<12} fetched {r['fetched']:>5}  new {r['new']:>5}  updated {r['updated']:>5}  "
                   f"skipped {r['skipped']:>4}{err}")


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


# ------------------------------------------------------------------------------------- subscribers


@main.group("subscribers")
def subscribers_group() -> None:
    """Add, list, show, remove, import and export subscribers."""


@subscribers_group.command("add")
@click.argument("email", required=False)
@click.option("--webhook", metavar="URL", help="A team channel instead of an inbox: its incoming-webhook URL "
              "(kept secret: stored sealed, shown redacted); '-' reads it from standard input, out of "
              "the shell history and `ps`.")
@click.option("--kind", type=click.Choice(subscribers.webhook_kinds()), help="The webhook's service, with --webhook.")
@click.option("--topic", "topics", multiple=True, help="A topic phrase; repeat for more.")
@click.option("--exclude", "excludes", multiple=True, help="Leave out papers matching this phrase.")
@click.option("--frequency", type=click.Choice(FREQUENCIES), default="daily", show_default=True)
@click.option("--weekday", default="monday", show_default=True, help="Day of a weekly digest.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone, e.g. Europe/Paris.")
@click.option("--hour", type=click.IntRange(0, 23), default=8, show_default=True, help="Local delivery hour.")
@click.option("--max-items", type=click.IntRange(1, 100), help="Papers per digest (default from config).")
@click.option("--name", help="Display name used in the To: header.")
@click.option("--author", "authors", multiple=True, help="Follow this author (\"Yann LeCun\", \"Y. LeCun\"); repeat for more.")
@click.option("--min-papers", type=click.IntRange(1, 100), help=MIN_PAPERS_HELP)
@click.option("--best-of-week", is_flag=True, help=BEST_OF_WEEK_HELP)
@pass_ctx
def subscribers_add(ctx: Ctx, email: str | None, webhook: str | None, kind: str | None, topics, excludes, frequency,
                    weekday, timezone, hour, max_items, name, authors, min_papers, best_of_week) -> None:
    """Add an active subscriber: an email address, or a team channel (--webhook URL --kind slack|discord|generic).

    Example: digest subscribers add ada@example.org --topic "diffusion models" --timezone Europe/London
    """
    if (email is None) == (webhook is None):
        raise click.UsageError("give an EMAIL address or --webhook URL (one of them)")
    if (webhook is None) != (kind is None):
        raise click.UsageError("--webhook and --kind go together")
    profile = ProfileChange(topics=topics, excludes=excludes, frequency=frequency, weekday=weekday,
                            timezone=timezone, hour=hour, max_items=max_items, name=name, authors=authors,
                            min_papers=min_papers, best_of_week=best_of_week)
    if webhook == "-":
        webhook = sys.stdin.readline().strip()
    if webhook is not None:
        v = subscribers.add_webhook(ctx.db, ctx.settings.secret(), webhook, kind, profile)
    else:
        v = subscribers.add(ctx.db, email, profile)
    if v.min_papers or v.best_of_week:
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
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    for r in rows:
        where = f"  [{r.webhook}]" if r.webhook else ""
        click.echo(f"{printable(r.email):<36} {r.status:<12} {r.frequency:<8} {r.hour:02d}:00 "
                   f"{printable(r.timezone):<20} {printable('; '.join(r.topics)) or '(trending)'}{where}")
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
    for key in (*keys, "name", "status", "frequency", "weekday", "hour", "timezone", "max_items", "min_papers",
                "best_of_week", "created_at", "suppressed"):
        click.echo(f"{key}: {printable(data[key])}")
    no_topic = "(none: papers like the seeded ones)" if data["seeds"] else "(none: trending)"
    click.echo(f"topics: {printable('; '.join(data['topics'])) or no_topic}")
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
    added, updated, errors = subscriber_csv.import_csv(ctx.db, csv_file)
    for e in errors:
        click.echo(f"skipped {e}", err=True)
    click.echo(f"added {added}, updated {updated}, skipped {len(errors)}")
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


# ------------------------------------------------------------------------------- preview and send


@main.command()
@click.option("--subscriber", "email", help="Preview this subscriber's next digest.")
@click.option("--topic", "topics", multiple=True, help="Or preview for these topics.")
@click.option("--exclude", "excludes", multiple=True, help="Exclusions, with --topic.")
@click.option("--format", "fmt", type=click.Choice(["html", "text", "eml", "json"]), default="html", show_default=True,
              help="json: a team channel's webhook payload (eml: an inbox's message).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead of stdout.")
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in a browser.")
@pass_ctx
def preview(ctx: Ctx, email, topics, excludes, fmt, out, open_browser) -> None:
    """Render a digest without sending or storing anything.

    Examples: digest preview --subscriber ada@example.org --format eml;
    digest preview --topic "graph neural networks" --out gnn.html --open
    """
    if not email and not topics:
        raise click.UsageError("give --subscriber EMAIL or at least one --topic")
    shown = previewing.preview(ctx.read_db, ctx.settings, email=subscribers.key(email) if email else None,
                               topics=topics, excludes=excludes)
    if fmt in ("eml", "json") and fmt != shown.media:
        raise click.UsageError("--format json is for a team channel (--subscriber KIND:HASH), eml for an inbox")
    rendered = shown.rendered
    body = {"html": rendered.html, "text": rendered.text, "eml": shown.data.decode("utf-8"),
            "json": shown.data.decode("utf-8")}[fmt]
    if open_browser and not out:
        out = str(Path("digest-preview.html").resolve()) if fmt == "html" else None
    if out:
        Path(out).write_text(body, encoding="utf-8")
        click.echo(f"wrote {out} ({rendered.shown} papers: {rendered.subject})", err=True)
        if open_browser:
            webbrowser.open(Path(out).resolve().as_uri())
    else:
        click.echo(body, nl=False)


WORKERS = click.option("--workers", type=click.IntRange(1, 16), default=None,
                       help="Sending processes (default: mail.workers, 1); each claims its own batches.")


def _pass(ctx: Ctx, *, email: str | None = None, dry_run: bool = False, as_json: bool = False,
          ingest_first: bool = False, workers: int | None = None) -> tuple[PassReport, dict]:
    """One pipeline pass, with a progress bar on a terminal; returns it and the counts to print."""
    email = subscribers.key(email) if email else None
    for warning in ctx.settings.warnings() if not dry_run else ():
        click.echo(f"warning: {warning}", err=True)
    bar = _Bar(sys.stderr.isatty() and not as_json)
    with bar:
        r = sending.run_pass(ctx.read_db if dry_run else ctx.db, ctx.settings, email=email, dry_run=dry_run,
                              ingest_first=ingest_first, on_planned=bar.start, progress=bar.update, workers=workers)
    if dry_run:
        rows = planning.dry_run_rows(r.plan)
        return r, {"dry_run": True, "would_send": [x for x in rows if x["papers"]], "skipped": r.plan.skipped,
                   "suppressed": r.plan.suppressed, "already": r.plan.already,
                   "quiet": [x for x in rows if not x["papers"]]}
    return r, r.counts()


class _Bar:
    """click's progress bar on stderr, once the length is known; nothing when not on a terminal."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def start(self, total: int) -> None:
        if self.enabled and total > 0:
            self.bar = click.progressbar(length=total, label="sending", file=sys.stderr)
            self.bar.__enter__()

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _print_counts(result: dict, as_json: bool) -> None:
    if as_json:
        echo_json(result)
    elif result.get("dry_run"):
        for r in result["would_send"]:
            click.echo(f"{printable(r['email']):<36} {r['papers']:>3} papers  {printable(r['subject'])}")
        for r in result["quiet"]:
            click.echo(f"{printable(r['email']):<36}   0 papers  {printable(r['subject'])}")
        click.echo(f"would send {len(result['would_send'])}, skipped {result['skipped']} (nothing new), "
                   f"suppressed {result['suppressed']}, already sent this period {result['already']}"
                   + (f", quiet {len(result['quiet'])} (too few papers: recorded, rolled over)" if result["quiet"] else ""))
    else:
        click.echo(f"sent {result['sent']}, retried {result['retried']}, failed {result['failed']}, "
                   f"suppressed {result['suppressed']}, skipped {result['skipped']} (nothing new)"
                   + (f", quiet {result['quiet']} (too few papers: recorded, rolled over)" if result.get("quiet") else ""))
        per = result.get("by_transport") or {}
        if any(name.startswith("webhook") for name in per):  # mail alone: the line above says it all
            click.echo("by transport: " + "; ".join(
                f"{name} " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) for name, counts in sorted(per.items())))
        for e in result["errors"]:
            click.echo(f"error: {e}", err=True)


@main.command()
@click.option("--subscriber", "email", help="Only this subscriber.")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send and store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@WORKERS
@pass_ctx
def send(ctx: Ctx, email, dry_run, as_json, workers) -> None:
    """Plan this period's editions and send every due delivery. Running it twice sends nothing twice."""
    _, result = _pass(ctx, email=email, dry_run=dry_run, as_json=as_json, workers=workers)
    _print_counts(result, as_json)
    if result.get("errors"):
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@WORKERS
@pass_ctx
def run(ctx: Ctx, as_json: bool, workers: int | None) -> None:
    """Ingest, plan and send in one pass."""
    r, counts = _pass(ctx, ingest_first=True, as_json=as_json, workers=workers)
    assert r.ingest is not None
    result = {"ingest": [vars(x) for x in r.ingest.sources], **counts}
    if not as_json:
        _print_ingest(result["ingest"])
    _print_counts(result, as_json)
    if result.get("errors"):
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (for monitoring).")
@pass_ctx
def status(ctx: Ctx, as_json: bool) -> None:
    """Papers, subscribers, last fetch per source, last edition, failures, scheduler jobs."""
    data = admin_status.status(ctx.read_db, ctx.settings)
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
        rows, outbox = run_demo(Path(directory))
    except (*USER_ERRORS, RuntimeError) as err:
        raise click.ClickException(str(err)) from None
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

    run_server(ctx.settings, ctx.db, host=host, port=port)


@main.group("unsubscribes")
def unsubscribes_group() -> None:
    """Handle the mailto: alternative of List-Unsubscribe."""


@unsubscribes_group.command("process")
@click.option("--maildir", "maildirs", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A Maildir receiving mail.unsubscribe_mailto (messages are marked seen once handled).")
@click.option("--mbox", "mboxes", multiple=True, type=click.Path(dir_okay=False, exists=True), help="An mbox file.")
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
    from digest.scheduler import serve

    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logging.getLogger("digest").setLevel(logging.INFO)  # a daemon logs one line per run
    serve(ctx.settings, ctx.db, metrics_port=metrics_port)


@main.command()
@click.option("--at", "at", metavar="ISO-DATETIME", help="The instant to check (default: now; no offset: UTC).")
@click.option("--subscriber", "email", help="Only this subscriber.")
@click.option("--all", "show_all", is_flag=True, help="Also list who is not due, and why.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_ctx
def due(ctx: Ctx, at: str | None, email: str | None, show_all: bool, as_json: bool) -> None:
    """List who is due for an edition at an instant, and why. Sends and stores nothing.

    Example: digest due --at 2026-03-29T07:30:00+02:00 --all
    """
    now = planning.instant(at)
    rows = planning.due_at(ctx.read_db, now, email=subscribers.normalise_email(email) if email else None)
    shown = rows if show_all else [r for r in rows if r["due"]]
    if as_json:
        echo_json({"at": now.isoformat(), "due": sum(r["due"] for r in rows), "subscribers": shown})
        return
    for r in shown:
        click.echo(f"{printable(r['email']):<32} {'due' if r['due'] else 'not due':<7}  {r['period'] or '-':<10}  "
                   f"{printable(r['schedule']):<40} {printable(r['reason'])}")
    n = sum(r["due"] for r in rows)
    click.echo(f"{n} due, {len(rows) - n} not due at {now.isoformat()}")


@main.group("bounces")
def bounces_group() -> None:
    """Read bounce reports and complaints; suppress addresses by policy."""


@bounces_group.command("process")
@click.option("--maildir", "maildirs", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A Maildir receiving bounces (read only; reading it again counts nothing twice).")
@click.option("--mbox", "mboxes", multiple=True, type=click.Path(dir_okay=False, exists=True), help="An mbox file.")
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


main.add_command(rank_command, "rank")
subscribers_group.add_command(seed_command, "seed")
subscribers_group.add_command(follow_command, "follow")
subscribers_group.add_command(unfollow_command, "unfollow")
subscribers_group.add_command(subscribers_update, "update")
main.add_command(eval_command, "eval")


if __name__ == "__main__":
    main()
