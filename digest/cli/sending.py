"""`digest send` and `digest run`: one pass (ingest, plan, send), a progress bar on a terminal, and
the counts printed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from digest.cli.context import Ctx, echo_json, pass_ctx, print_ingest, printable
from digest.cli.progress import Progress
from digest.lazy import lazy

if TYPE_CHECKING:
    from digest.usecases.sending import PassReport

subscribers = lazy("digest.subscriptions.subscribers")
planning = lazy("digest.usecases.planning")
sending = lazy("digest.usecases.sending")
stopping = lazy("digest.usecases.stopping")
recovery = lazy("digest.usecases.recovery")

WORKERS = click.option("--workers", type=click.IntRange(1, 16), default=None,
                       help="Sending processes (default: mail.workers, 1); each claims its own batches.")


def _pass(ctx: Ctx, *, email: str | None = None, dry_run: bool = False, as_json: bool = False,
          ingest_first: bool = False, workers: int | None = None) -> tuple[PassReport, dict]:
    """One pipeline pass, with a progress bar on a terminal; returns it and the counts to print."""
    email = subscribers.key(email) if email else None
    ctx.check_templates()
    if email:
        email = subscribers.get(ctx.read_db, email).email  # an unknown subscriber is one line, not "sent 0"
    for warning in ctx.settings.warnings() if not dry_run else ():
        click.echo(f"warning: {warning}", err=True)
    planned, bar = Progress("planning", enabled=not as_json), Progress("sending", enabled=not as_json)
    with stopping.on_signals() as stop, planned, bar:
        r = sending.run_pass(ctx.read_db if dry_run else ctx.db, ctx.settings, email=email, dry_run=dry_run,
                             ingest_first=ingest_first, on_planned=lambda n: (planned.finish(), bar.start(n)),
                             progress=bar, workers=workers, planning=planned, stop=stop)
    if stop.is_set():
        r.send.errors = [e for e in r.send.errors if e != sending.STOPPING]
        left = sending.pending_count(ctx.db, email)
        return r, {**r.counts(), "to": sending.destination(ctx.settings), "stopped": stop.name,
                   "exit": stop.exit_code, "left": left}
    if dry_run:
        rows = planning.dry_run_rows(r.plan)
        return r, {"dry_run": True, "would_send": [x for x in rows if x["papers"]],
                   "skipped": r.plan.nothing_new,
                   "suppressed": r.plan.suppressed, "already": r.plan.already,
                   "quiet": [x for x in rows if not x["papers"]]}
    for h in recovery.orphaned(ctx.db):  # a sender killed earlier: a silent "sent 0" would hide them
        click.echo(f"warning: {h.deliveries} deliveries are held by {h.worker}, whose process is gone, until "
                   f"{h.until:%Y-%m-%d %H:%M:%S} UTC: `digest deliveries release` hands them back now",
                   err=True)
    return r, {**r.counts(), "to": sending.destination(ctx.settings)}


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
                   + (f", quiet {len(result['quiet'])} (too few papers: recorded, rolled over)"
                      if result["quiet"] else ""))
    else:
        click.echo(f"sent {result['sent']}, retried {result['retried']}, failed {result['failed']}, "
                   f"suppressed {result['suppressed']}, skipped {result['skipped']} (nothing new)"
                   + (f", quiet {result['quiet']} (too few papers: recorded, rolled over)"
                      if result.get("quiet") else "")
                   + (f", given back {result['given_back']} (unsent, due again)"
                      if result.get("given_back") else ""))
        if result["sent"] or result["retried"] or result["failed"]:
            click.echo(f"mail went to {result['to']}")
        per = result.get("by_transport") or {}
        if any(name.startswith("webhook") for name in per):  # mail alone: the line above says it all
            click.echo("by transport: " + "; ".join(
                f"{name} " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) for name,
                counts in sorted(per.items())))
        for e in result["errors"]:
            click.echo(f"error: {e}", err=True)
    if result.get("stopped"):
        click.echo(f"stopped by {result['stopped']}: {result['left']} deliveries left for the next run "
                   "(none held)", err=True)


@click.command("send")
@click.option("--subscriber", "email", help="Only this subscriber.")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send and store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@WORKERS
@pass_ctx
def send_command(ctx: Ctx, email, dry_run, as_json, workers) -> None:
    """Plan this period's editions and send every due delivery. Running it twice sends nothing twice."""
    _, result = _pass(ctx, email=email, dry_run=dry_run, as_json=as_json, workers=workers)
    _print_counts(result, as_json)
    _exit(result)


@click.command("run")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@WORKERS
@pass_ctx
def run_command(ctx: Ctx, as_json: bool, workers: int | None) -> None:
    """Ingest, plan and send in one pass."""
    r, counts = _pass(ctx, ingest_first=True, as_json=as_json, workers=workers)
    assert r.ingest is not None
    result = {"ingest": [vars(x) for x in r.ingest.sources], **counts}
    if not as_json:
        print_ingest(result["ingest"])
    _print_counts(result, as_json)
    _exit(result)


def _exit(result: dict) -> None:
    """130 or 143 when a signal stopped the run, 1 when something needs the admin, else 0."""
    if result.get("stopped"):
        stopping.leave_quickly()
        sys.exit(result["exit"])
    if result.get("errors"):
        sys.exit(1)
