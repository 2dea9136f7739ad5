"""Admin commands over a subscriber's reading profile: `digest subscribers seed`, `follow` and
`unfollow` (registered on the `subscribers` group by cli/__init__.py). Each is one call into the
use cases or subscriptions, and the printing of its result; `ctx.obj` is the CLI's `Ctx`."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.progress import Progress
from digest.lazy import lazy

subscribers = lazy("digest.subscriptions.subscribers")
seeding = lazy("digest.usecases.seeding")


@click.command("seed")
@click.argument("email")
@click.option("--arxiv", "ids", multiple=True, metavar="ID",
              help="An arXiv id (2104.12255, arXiv:2104.12255v1, an abs/pdf URL); repeat, or separate by "
                   "commas.")
@click.option("--bibtex", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="A BibTeX file.")
@click.option("--zotero", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A Zotero CSV export (File > Export Library > CSV).")
@click.pass_obj
def seed_command(ctx, email: str, ids: tuple[str, ...], bibtex: Path | None, zotero: Path | None) -> None:
    """Seed a profile with one's own papers: they count as "more like this".

    Example: digest subscribers seed ada@example.org --arxiv 1706.03762 --arxiv 2006.11239
    """
    given = [x for x in (ids, bibtex, zotero) if x]
    if len(given) != 1:
        raise click.UsageError("give --arxiv ID (one or more), or --bibtex FILE, or --zotero FILE.csv")
    if ids:
        # a bar when arXiv is asked more than once (the calls are seconds apart)
        with Progress("asking arXiv (ids)", enabled=seeding.arxiv_calls(ids) > 1) as progress:
            report = seeding.seed_arxiv(ctx.db, ctx.settings, email, ids, progress=progress)
    else:
        path = bibtex or zotero
        assert path is not None
        report = seeding.seed_file(ctx.db, email, path.name, path.read_bytes(),
                                   "bibtex" if bibtex else "zotero")
    click.echo(report.summary())


@click.command("follow")
@click.argument("email")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def follow_command(ctx, email: str, names: tuple[str, ...]) -> None:
    """Follow authors: their papers are always in the digest, first, "By <name>, whom you follow".

    Names match tolerantly: case, accents, "Surname, Given" and initials ("Y. LeCun" ~ "Yann LeCun").
    Example: digest subscribers follow ada@example.org "Yann LeCun" "Bengio, Yoshua"
    """
    _print_followed(subscribers.follow(ctx.db, email, add=names))


@click.command("unfollow")
@click.argument("email")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def unfollow_command(ctx, email: str, names: tuple[str, ...]) -> None:
    """Stop following authors (by the same tolerant name rule)."""
    _print_followed(subscribers.follow(ctx.db, email, remove=names))


def _print_followed(sub) -> None:
    click.echo(f"{sub.email} follows " + ("; ".join(sub.authors) if sub.authors else "no author"))


__all__ = ["follow_command", "seed_command", "unfollow_command"]
