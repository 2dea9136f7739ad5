"""Starting any command: the settings, checked, and the database, at the schema the command needs."""

from __future__ import annotations

from digest import config
from digest.config import ConfigError, Settings
from digest.ranking import semantic
from digest.store.db import Database, Schema, SchemaError, SchemaState, open_checked

__all__ = ["Database", "Schema", "SchemaError", "SchemaState", "load_settings", "open_database"]
from digest.usecases.embedding import encoder


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
            encoder(settings).check()  # found offline, or refused now rather than at the first plan
        except semantic.ModelError as err:
            raise ConfigError(f"ranking.model: {err}") from None
    return settings


def open_database(settings: Settings, schema: Schema = "create") -> tuple[Database, SchemaState]:
    """The configured database and the schema state it was found in (`store.db.open_checked`): reading
    commands `check` (nothing is created), writing ones `create` (a fresh database gets the schema),
    `digest init` `upgrade`s. Raises SchemaError, one line that points at `digest init`."""
    return open_checked(settings.database.url, schema)
