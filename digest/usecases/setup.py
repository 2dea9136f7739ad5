"""Starting any command: the settings, checked, and the database, at the schema the command needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest import config
from digest.config import ConfigError, Settings
from digest.lazy import lazy
from digest.ranking import semantic

if TYPE_CHECKING:
    from digest.store.db import Database, Schema, SchemaError, SchemaState
    from digest.usecases.reads import Reads

__all__ = ["Database", "Reads", "Schema", "SchemaError", "SchemaState", "check_templates", "load_settings",
           "open_database", "page_templates", "quick_reads", "store_reads"]
embedding = lazy("digest.usecases.embedding")  # the model's stores: a ranker that embeds, not lexical
# SQLAlchemy's side, loaded on first use: `digest status` and `digest due` may start without it
store_db = lazy("digest.store.db")
secrets_store = lazy("digest.store.secrets")
reads = lazy("digest.usecases.reads")
quick_read = lazy("digest.store.quick_read")


def __getattr__(name: str):  # Database, SchemaError...: named here for the shells, loaded when asked for
    if name in ("Database", "Schema", "SchemaError", "SchemaState"):
        return getattr(store_db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_settings(path: str | None = None) -> Settings:
    """The settings (`config.load`), refused at start when they ask for a ranker this install lacks."""
    settings = config.load(path)
    try:
        # the one rule for which ranker an install can run
        uses_model = semantic.wanted(settings.digest.ranker)
    except RuntimeError as err:
        raise ConfigError(f"digest.ranker: {err}") from None
    if uses_model:
        try:
            embedding.encoder(settings).check()  # found offline, or refused now rather than at the first plan
        except semantic.ModelError as err:
            raise ConfigError(f"ranking.model: {err}") from None
    return settings


def open_database(settings: Settings, schema: Schema = "create") -> tuple[Database, SchemaState]:
    """The configured database and the schema state it was found in (`store.db.open_checked`): reading
    commands `check` (nothing is created), writing ones `create` (a fresh database gets the schema),
    `digest init` `upgrade`s. Raises SchemaError, one line that points at `digest init`.

    The settings then sign with the database's secret (`use_secrets`), unless the admin set one."""
    db, state = store_db.open_checked(settings.database.url, schema)
    try:
        settings.use_secrets(signing_secrets(db, settings))
    except ConfigError:  # an unreadable web.secret_file: refused by the first command that signs
        pass
    return db, state


def quick_reads(settings: Settings) -> Reads | None:
    """The quick reader `digest status` and `digest due` read through (digest.store.quick_read: no
    SQLAlchemy), when it can answer and opening the database would write nothing: its signing secret is
    kept (or one is configured) and no earlier version's secret file waits to be adopted. None: open the
    database as reading commands do (`open_database(..., "check")`, its errors and notices) and read
    through `store_reads`."""
    reader = quick_read.open_reader(settings.database.url)
    if reader is None:
        return None
    kept = reader.signing_secrets()
    earlier = config.earlier_secret(settings.earlier_secret_file())
    if not (kept or settings.configured_secret()) or (earlier is not None and earlier not in kept):
        reader.close()
        return None
    settings.use_secrets(signing_order(settings, kept))
    return reader


def store_reads(db: Database) -> Reads:
    """What `digest status` and `digest due` read through, from the ORM store."""
    return reads.StoreReads(db)


def signing_secrets(db: Database, settings: Settings) -> tuple[str, ...]:
    """One database, one signing secret: the one the admin set ($DIGEST_SECRET, web.secret_file), else the
    one the database keeps (digest.store.secrets), made once, never one per directory. A secret set over
    the database's own signs from then on, and the database's still verifies the links and sealed
    webhook URLs already out; that is said in one line."""
    configured = settings.configured_secret()
    kept = secrets_store.database_secrets(db, settings.earlier_secret_file(), generate=not configured)
    return signing_order(settings, kept)


def signing_order(settings: Settings, kept: list[str]) -> tuple[str, ...]:
    """The secrets to sign and verify with, the signing one first, given the ones the database keeps."""
    configured = settings.configured_secret()
    if not configured:
        return tuple(kept)
    earlier = [k for k in kept if k != configured]
    if earlier:
        settings.notice(f"signing with the configured secret (${settings.web.secret_env} or "
                        f"web.secret_file); the {len(earlier)} secret(s) this database signed with before "
                        "still verify the links and webhook URLs already out")
    return (configured, *earlier)


def page_templates(settings: Settings) -> list[str]:
    """Where the web app's page templates are looked up, an admin's folder first."""
    from digest.render import templates  # the renderer's stack: only the commands that render load it

    return templates.folders(settings.render.templates_dir).search_path()


def check_templates(settings: Settings) -> None:
    """Compile every template now, shipped or an admin's (`[render] templates_dir`), and check it
    against the rules templates keep (digest.render.checks): the start of every command that renders
    (send, run, preview, serve, scheduler). Raises TemplateError, one line naming the file and line."""
    import jinja2  # the renderer's stack: only the commands that render load it (`status` starts fast)

    from digest import render
    from digest.render import checks, templates
    from digest.subscriptions import signup

    digest = settings.digest
    render.renderer_for(settings.render.templates_dir).check(settings.web.base_url, digest.max_items,
                                                             digest.trending_items, digest.excerpt_chars)
    signup.check_notice_templates(settings)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(page_templates(settings)), autoescape=True)
    for name in templates.PAGES:
        try:
            env.get_template(name)  # compiled: a syntax error names its file and line
        except jinja2.TemplateSyntaxError as err:
            where = checks.where(err.filename or name, err.lineno)
            raise checks.TemplateError(f"{where}: {err.message}") from None
