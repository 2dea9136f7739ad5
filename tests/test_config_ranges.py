"""Every config key is checked at start against a range that can work (issue 23, item 8): a number out
of range, infinite or not a number, an address in the wrong form, a file saved with a byte-order mark."""

from __future__ import annotations

import typing

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from digest.cli import main
from digest.config import SOURCE_TYPES, ConfigError, Settings, from_dict, load


def numeric_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type]]:
    """(path, type) of every int or float key of the settings, sections and source kinds included."""
    found = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found += numeric_keys(kind, (*prefix, name))
        elif kind in (int, float):
            found.append(((*prefix, name), kind))
    return found


KEYS = numeric_keys(Settings) + [(("sources", "s", name), kind) for t in SOURCE_TYPES
                                 for (name,), kind in numeric_keys(t)]


def config_with(path: tuple[str, ...], value) -> dict:
    data: dict = {}
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    if path[0] == "sources":
        source = next(t for t in SOURCE_TYPES if path[-1] in t.model_fields)
        kind = typing.get_args(source.model_fields["type"].annotation)[0]
        node["type"] = kind
        if kind == "file":
            node["paths"] = ["x.json"]
    return data


def test_every_numeric_key_is_bounded():
    assert len(KEYS) > 30
    for path, kind in KEYS:
        for value in (10**15 if kind is int else 1e300, -(10**15) if kind is int else -1e300):
            with pytest.raises(ConfigError, match=rf"{path[-1]}: "):
                from_dict(config_with(path, value))
        if kind is float:
            for value in (float("inf"), float("nan")):
                with pytest.raises(ConfigError, match=rf"{path[-1]}: .*finite"):
                    from_dict(config_with(path, value))


@pytest.mark.parametrize("line, key", [
    ("[mail]\nlease_seconds = 1e12", "mail.lease_seconds"),
    ("[mail.smtp]\ntimeout = 1e300", "mail.smtp.timeout"),
    ("[mail]\nwebhook_timeout = inf", "mail.webhook_timeout"),
    ("[mail]\nretry_max_backoff = 1e20", "mail.retry_max_backoff"),
    ("[mail.smtp]\nwindow_seconds = 1e15", "mail.smtp.window_seconds"),
    ('[mail]\nunsubscribe_mailto = "Unsubscribe <unsubscribe@example.org>"', "mail.unsubscribe_mailto"),
    ('[mail]\nfrom_address = "Trending Papers"', "mail.from_address"),
    ('[mail]\nreply_to = "editor at example.org"', "mail.reply_to"),
    ('[mail]\nlist_id = "digest.example.org"', "mail.list_id"),
    ('[mail]\nfrom_address = "Trending <dïgest@example.org>"', "mail.from_address"),
    ('[mail]\ndkim_domain = "Trending <example.org>"', "mail.dkim_domain"),
    ("[mail.smtp]\nrate_limit = 1e-300", "mail.smtp.rate_limit"),
    ('[mail]\ndkim_selector = "digest 2026"', "mail.dkim_selector"),
    ('[http]\nuser_agent = "digest\\r\\nX-Evil: 1"', "http.user_agent"),
])
def test_a_send_with_a_key_out_of_range_is_refused_at_start_in_one_line(tmp_path, line, key):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n{line}\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "send"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and f"{key}: " in result.output
    assert not (tmp_path / "d.db").exists()  # refused before anything was made


def test_addresses_in_the_forms_mail_takes_pass():
    s = from_dict({"mail": {"from_address": "Trending Papers <digest@example.org>",
                            "reply_to": "editor@example.org", "unsubscribe_mailto": "unsubscribe@example.org",
                            "list_id": "Trending papers <digest.example.org>"}})
    assert s.mail.unsubscribe_mailto == "unsubscribe@example.org"
    assert Settings().mail.from_address.endswith("@localhost>")  # the defaults pass their own checks


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_bytes("\ufeff[digest]\nsite_name = \"Papiers tendance\"\n".encode())
    assert load(cfg).digest.site_name == "Papiers tendance"
