"""What every command shares: the settings and database opened on first use (`Ctx`), errors a user can
cause as one line, and printing."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from digest.lazy import lazy

if TYPE_CHECKING:
    from digest import config as config_mod
    from digest.usecases.setup import Database, Reads, Schema, SchemaState

setup = lazy("digest.usecases.setup")


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
            self._tell()
        return self._settings

    def database(self, schema: Schema) -> Database:
        if self._db is None:
            self._db, self.found = setup.open_database(self.settings, schema)
            self._tell()
        return self._db

    def _tell(self) -> None:
        """What the admin should know about how the settings were resolved, one line each on stderr."""
        for line in self.settings.take_notices():
            click.echo(f"note: {line}", err=True)

    def check_templates(self) -> None:
        """For the commands that render: every template, shipped or the admin's, compiled and checked
        against the template rules now, before anything is read or sent (setup.check_templates)."""
        setup.check_templates(self.settings)

    @property
    def db(self) -> Database:
        """For commands that work on an existing list (send, remove, bounces...): the database must be
        there, at the current schema; nothing is created (a cron job in the wrong directory says so)."""
        return self.database("check")

    @property
    def new_db(self) -> Database:
        """For the commands that may start a list (ingest, adding or importing subscribers): a missing or
        empty database gets the schema; any other must be current."""
        return self.database("create")

    def reads(self, quick: bool = True) -> Reads:
        """For `digest status` and `digest due`: what they read through, the quick reader when it can
        answer (setup.quick_reads: no SQLAlchemy), else the store of `read_db`."""
        found = setup.quick_reads(self.settings) if quick and self._db is None else None
        self._tell()
        return found if found is not None else setup.store_reads(self.read_db)

    @property
    def read_db(self) -> Database:
        """For reading commands: the database must be at the current schema; nothing is created."""
        return self.database("check")


pass_ctx = click.make_pass_decorator(Ctx)


def user_errors() -> tuple[type[Exception], ...]:
    """The errors a user can cause (imported when one is raised: a command may not have needed them)."""
    from digest.config import ConfigError
    from digest.subscriptions.rules import SubscriberError
    from digest.usecases.setup import SchemaError

    return (ConfigError, SchemaError, SubscriberError, LookupError, ValueError, OSError)


def friendly(fn):
    """Errors a user can cause end in one clear line and exit status 1, not a traceback; Ctrl-C in
    one line and 130 (what was committed stays: every command writes in transactions), not click's
    "Aborted!" and 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, BrokenPipeError):
            raise  # a closed pipe (`digest ... | head`): click ends quietly
        except KeyboardInterrupt:  # Ctrl-C where a command has no stop of its own (see usecases.stopping)
            click.echo("stopped by SIGINT: what the command wrote before it is kept", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as err:
            if isinstance(err, user_errors()):
                line = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise click.ClickException(line) from None
            # a database that cannot be reached... (through the store, or the quick reader's driver)
            if type(err).__module__.startswith(("sqlalchemy", "sqlite3", "psycopg")):
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
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(value))



def print_ingest(rows: list[dict]) -> None:
    for r in rows:
        err = f"  error: {r['error']}" if r.get("error") else ""
        click.echo(f"{r['name']:<12} fetched {r['fetched']:>5}  new {r['new']:>5}  updated {r['updated']:>5} "
                   " "
                   f"skipped {r['skipped']:>4}{err}")


class LazyChoice(click.Choice):
    """A click.Choice whose choices come from a module loaded only when they are needed (parsing the
    option, or its command's --help)."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        super().__init__(())

    @property
    def choices(self) -> Sequence[str]:
        return self._load()

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:  # click.Choice.__init__ sets them: ours are loaded
        pass
