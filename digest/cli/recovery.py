"""`digest suppressions ...` and `digest deliveries ...`: see and undo what the system decided."""

from __future__ import annotations

import sys

import click

from digest.cli.context import Ctx, echo_json, pass_ctx, printable
from digest.lazy import lazy

subscribers = lazy("digest.subscriptions.subscribers")  # loaded when a command runs (digest.lazy)
recovery = lazy("digest.usecases.recovery")

LEASE_STATES = {"running": "running", "gone": "its process is gone: `digest deliveries release`",
                "expired": "lease ran out: `digest deliveries release`", "elsewhere": "on another host"}


@click.group("suppressions")
def suppressions_group() -> None:
    """Addresses that are never mailed (bounces, complaints, unsubscribes): see why, lift them."""


@suppressions_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_ctx
def suppressions_list(ctx: Ctx, as_json: bool) -> None:
    """Every suppressed address: the reason, since when, and the report or reply that caused it."""
    rows = recovery.suppressions(ctx.read_db)
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    for r in rows:
        click.echo(f"{printable(r.email):<36} {r.reason:<12} since {r.since:%Y-%m-%d %H:%M}  "
                   f"{printable(r.cause)}")
    click.echo(f"{len(rows)} suppressed address{'es' if len(rows) != 1 else ''}")


@suppressions_group.command("lift")
@click.argument("email")
@pass_ctx
def suppressions_lift(ctx: Ctx, email: str) -> None:
    """Mail EMAIL again: its suppression goes, and the bounces behind it no longer count (an unsubscribe
    is only lifted by the subscriber's own new subscription)."""
    gone = recovery.lift(ctx.db, email)
    click.echo(f"lifted {gone.email} ({gone.reason} since {gone.since:%Y-%m-%d %H:%M}: "
               f"{printable(gone.cause)})")


@click.group("deliveries")
def deliveries_group() -> None:
    """Failed, waiting and held deliveries: make them due now, hand back what a dead sender held."""


@deliveries_group.command("retry")
@click.option("--subscriber", "email", help="Only this subscriber's.")
@pass_ctx
def deliveries_retry(ctx: Ctx, email: str | None) -> None:
    """Make the current period's failed and retry-waiting deliveries due now (the next `digest send`
    tries each once more)."""
    if email:
        email = subscribers.get(ctx.read_db, email).email
    r = recovery.retry(ctx.db, email)
    click.echo(f"{r.due} deliveries due now ({r.failed} failed, {r.waiting} waiting to retry)"
               + (f"; {r.older} of past periods left alone" if r.older else "")
               + ("; run `digest send`" if r.due else ""))


@deliveries_group.command("release")
@pass_ctx
def deliveries_release(ctx: Ctx) -> None:
    """Hand back the deliveries whose sender is gone (its process ended on this host, or its lease ran
    out), due at once. Refused for a sender that still runs."""
    r = recovery.release(ctx.db)
    for h in r.holders or []:
        click.echo(f"released {h.deliveries} deliveries held by {printable(h.worker)} ({h.state})")
    for h in r.refused or []:
        click.echo(f"refused: {h.deliveries} deliveries held by {printable(h.worker)}, "
                   f"{'still running' if h.state == 'running' else 'on another host'}, lease until "
                   f"{h.until:%Y-%m-%d %H:%M:%S} UTC: stop it first, or wait for its lease", err=True)
    click.echo(f"released {r.released} deliveries; they go out on the next `digest send`")
    if r.refused:
        sys.exit(1)
