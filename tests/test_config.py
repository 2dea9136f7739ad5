import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import ConfigError, Settings, from_dict, load


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    s = load()
    assert s.database.url == "sqlite:///digest.db"
    assert s.mail.transport == "outbox"
    assert list(s.sources) == ["sample"] and s.sources["sample"].type == "file"


def test_unknown_key_is_refused_with_its_name(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[mail]\ntransport = "smtp"\nfrom_adress = "x@y.z"\n')
    with pytest.raises(ConfigError, match=r"mail\.from_adress: unknown key"):
        load(p)


def test_wrong_type_is_refused_with_key_and_reason(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[mail.smtp]\nport = \"twenty-five\"\n")
    with pytest.raises(ConfigError, match=r"mail\.smtp\.port: .*integer"):
        load(p)


def test_unknown_source_type_is_refused():
    with pytest.raises(ConfigError, match="sources.x"):
        from_dict({"sources": {"x": {"type": "rss"}}})


def test_config_file_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text('[digest]\nsite_name = "From cwd"\n')
    other = tmp_path / "other.toml"
    other.write_text('[digest]\nsite_name = "From env"\n')
    assert load().digest.site_name == "From cwd"
    monkeypatch.setenv("DIGEST_CONFIG", str(other))
    assert load().digest.site_name == "From env"


def test_secrets_come_from_environment_or_a_private_file(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text("from-the-file\n")
    s = from_dict({"web": {"secret_file": str(tmp_path / "secret")},
                   "mail": {"smtp": {"password_env": "MY_PW"}}})
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    assert s.secret() == "from-the-file"
    monkeypatch.setenv("DIGEST_SECRET", "from-env")
    assert s.secret() == "from-env"
    monkeypatch.setenv("MY_PW", "hunter2")
    assert s.smtp_password() == "hunter2"
    assert "hunter2" not in Settings.model_dump_json(s)


def test_a_configured_secret_file_must_exist(tmp_path, monkeypatch):
    """A configured secret_file that does not exist is an error (a typo must not rotate the secret), and
    nothing is created for it. (Without one, the database keeps the secret: tests/test_signing_secret.py.)"""
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    missing = tmp_path / "nonexistent" / "secret"
    s = from_dict({"web": {"secret_file": str(missing)}})
    with pytest.raises(ConfigError,
                       match=r"web.secret_file: .*nonexistent/secret: cannot read the signing secret"):
        s.secret()
    assert not missing.parent.exists()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        from_dict({"web": {"secret_file": str(tmp_path / "empty")}}).secret()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n[web]\nsecret_file = "{missing}"\n')
    assert CliRunner().invoke(main, ["--config", str(cfg), "init"]).exit_code == 0
    result = CliRunner().invoke(main, ["--config", str(cfg), "preview", "--topic", "diffusion"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (result.output.startswith("Error: web.secret_file:") and len(result.output.strip().splitlines())
            == 1)


def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[database]\nurl = 5\n")
    result = CliRunner().invoke(main, ["--config", str(p), "status"])
    assert result.exit_code == 1
    assert "database.url" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).parent.parent / "config.example.toml"
    s = load(example)
    assert s.mail.transport in ("outbox", "smtp")


@pytest.mark.parametrize("zone", ["A" * 300, "localtime", "Factory", "right/UTC", "posixrules"])
def test_scheduler_timezone_is_an_iana_name(zone):
    with pytest.raises(ConfigError, match=r"scheduler\.timezone: .*unknown time zone") as err:
        from_dict({"scheduler": {"timezone": zone}})
    assert len(str(err.value)) < 200
    assert from_dict({"scheduler": {"timezone": "Europe/Paris"}}).scheduler.timezone == "Europe/Paris"


def test_smtp_with_plain_http_links_is_warned_about():
    assert from_dict({"mail": {"transport": "smtp"},
                      "web": {"base_url": "https://d.example.org"}}).warnings() == []
    assert from_dict({"web": {"base_url": "http://localhost:8000"}}).warnings() == []  # the outbox: a trial
    (warning,) = from_dict({"mail": {"transport": "smtp"},
                            "web": {"base_url": "http://d.example.org"}}).warnings()
    assert "web.base_url" in warning and "https" in warning and "RFC 8058" in warning
