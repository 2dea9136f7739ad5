"""An admin's templates (`[render] templates_dir`): any shipped template overridden file by file, a
missing file falling back to the shipped one, each override compiled and checked at the start of every
command that renders, and refused in one line naming the file and the line when it breaks a rule."""

from __future__ import annotations

import email
import email.policy
import json
import shutil

import httpx
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import from_dict
from digest.mail.sink import SmtpSink
from digest.render import TEMPLATE_DIR, Renderer
from digest.render.checks import TemplateError
from digest.render.templates import DIGEST, NOTICE, PAGES
from digest.usecases.setup import check_templates
from tests.test_e2e_browser import serving

LOGO = "https://lab.example.org/kim-lab-logo.png"
LAB_ACCENT, LAB_LINK = "#0f766e", "#7c3aed"  # the lab's colours, for the shipped #fbbf24 and #1d4ed8


def copy(folder, name: str) -> str:
    """Copy a shipped template into the admin's folder; its text."""
    folder.mkdir(exist_ok=True)
    shutil.copy(str(TEMPLATE_DIR / name), folder / name)
    return (folder / name).read_text(encoding="utf-8")


def edit(path, old: str, new: str) -> int:
    """Replace the first `old` by `new`; the line it was on."""
    text = path.read_text(encoding="utf-8")
    at = text.index(old)
    path.write_text(text[:at] + new + text[at + len(old):], encoding="utf-8")
    return text[:at].count("\n") + 1


def lab_digest(folder) -> None:
    """The README's worked example: a lab's logo above the heading, its colours for the accent and links."""
    copy(folder, "digest.mjml")
    path = folder / "digest.mjml"
    edit(path, '<mj-wrapper padding="0" css-class="digest-main">',
         '<mj-wrapper padding="0" css-class="digest-main">\n'
         '    <mj-section padding="20px 0 0 0"><mj-column>\n'
         f'      <mj-image src="{LOGO}" alt="Kim Lab" width="140px" align="left" padding="0 24px" />\n'
         '    </mj-column></mj-section>')
    path.write_text(path.read_text(encoding="utf-8").replace("#fbbf24", LAB_ACCENT)
                    .replace("#1d4ed8", LAB_LINK), encoding="utf-8")


@pytest.fixture
def world(tmp_path, db_url):
    """The CLI on a config with `[render] templates_dir`, the bundled listings, a real SMTP server."""
    folder = tmp_path / "lab-templates"
    folder.mkdir()
    with SmtpSink() as smtp:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f"""
[database]
url = "{db_url}"
[digest]
ranker = "lexical"
[mail]
transport = "smtp"
from_address = "Kim Lab papers <digest@example.org>"
[mail.smtp]
host = "{smtp.host}"
port = {smtp.port}
[web]
base_url = "https://digest.example.org"
secret_file = "{tmp_path / 'secret'}"
[render]
templates_dir = "{folder}"
""")
        runner = CliRunner()

        def digest(*args: str, code: int = 0) -> str:
            result = runner.invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)
            assert result.exit_code == code, result.output
            return result.output

        yield digest, smtp, folder


def test_a_lab_logo_and_colours_show_in_the_preview_and_in_the_sent_digest(world):
    digest, smtp, folder = world
    lab_digest(folder)
    digest("ingest")
    digest("subscribers", "add", "ada@example.org", "--topic", "diffusion models")
    html = digest("preview", "--subscriber", "ada@example.org")
    assert f'src="{LOGO}"' in html and LAB_ACCENT in html and LAB_LINK in html
    assert "#fbbf24" not in html and "#1d4ed8" not in html
    text = digest("preview", "--subscriber", "ada@example.org", "--format", "text")
    assert "Unsubscribe: https://digest.example.org/unsubscribe/" in text  # digest.txt: the shipped one

    assert json.loads(digest("send", "--json"))["sent"] == 1
    msg = email.message_from_bytes(smtp.messages[0].data, policy=email.policy.default)
    sent = msg.get_body(("html",)).get_content()
    assert f'src="{LOGO}"' in sent and LAB_ACCENT in sent and "#fbbf24" not in sent


def test_without_an_override_the_shipped_templates_are_used(world):
    digest, _, folder = world
    folder.rmdir()
    folder.mkdir()  # empty: every file falls back
    digest("ingest")
    html = digest("preview", "--topic", "diffusion models")
    assert "#fbbf24" in html and LOGO not in html


@pytest.mark.parametrize("command", [["preview", "--topic", "diffusion"], ["send"], ["run"], ["serve"],
                                     ["scheduler"]])
def test_every_command_that_renders_refuses_an_override_that_drops_the_unsubscribe_link(world, command):
    digest, smtp, folder = world
    copy(folder, "digest.mjml")
    line = edit(folder / "digest.mjml", '<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "")
    out = digest(*command, code=1)
    assert out.count("\n") == 1 and out.startswith(f"Error: {folder / 'digest.mjml'} line ")
    assert "the unsubscribe link (the URL of List-Unsubscribe) is missing" in out
    assert int(out.split(" line ")[1].split(":")[0]) > line  # the end of the template: where it is missing
    assert not smtp.messages


def test_an_override_that_tests_the_why_line_is_refused_naming_file_and_line(world):
    digest, _, folder = world
    copy(folder, "digest.mjml")
    line = edit(folder / "digest.mjml", "{{ p.why }}", "{% if p.why %}{{ p.why }}{% endif %}")
    out = digest("preview", "--topic", "diffusion", code=1)
    assert out == (f"Error: {folder / 'digest.mjml'} line {line}: p.why is each subscriber's own: a template "
                   "may print it as it is ({{ p.why }}), not test or transform it (it is filled in after the "
                   "template ran)\n")


# ------------------------------------------------------------------------------- each rule, one line


def refused(folder, name: str, old: str, new: str) -> tuple[str, int]:
    """Edit the admin's copy of `name`; the one-line refusal `check_templates` gives, and the line."""
    copy(folder, name)
    line = edit(folder / name, old, new)
    with pytest.raises(TemplateError) as err:
        check_templates(from_dict({"render": {"templates_dir": str(folder)}}))
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(folder / name))
    return message, line


def test_a_link_printed_but_not_linked_is_refused_on_its_line(tmp_path):
    message, line = refused(tmp_path / "t", "digest.mjml", '<a href="{{ prefs_url }}">Preferences</a>',
                            "Preferences: {{ prefs_url }}")
    assert message == (f"{tmp_path / 't' / 'digest.mjml'} line {line}: the preferences link is printed here "
                       'but not as a link: the template must keep <a href="{{ prefs_url }}">')


def test_a_text_part_without_the_unsubscribe_url_is_refused(tmp_path):
    message, _ = refused(tmp_path / "t", "digest.txt", "Unsubscribe: {{ unsubscribe_url }}", "")
    assert "the unsubscribe link (the URL of List-Unsubscribe) is missing" in message


def test_a_link_kept_only_in_some_digests_is_refused(tmp_path):
    message, line = refused(tmp_path / "t", "digest.mjml", '{% endif %}<a href="{{ unsubscribe_url }}">',
                            '<a href="{{ unsubscribe_url }}">{% endif %}')
    assert (f"line {line - 1}: the unsubscribe link (the URL of List-Unsubscribe) is left out by a branch "
            "of this {% if %}") in message


def test_a_digest_over_the_gmail_budget_is_refused_naming_the_papers_loop(tmp_path):
    padding = "<mj-text>" + "A long decorative paragraph about the lab. " * 120 + "</mj-text>"
    message, _ = refused(tmp_path / "t", "digest.mjml", '<mj-raw>{% if p.badges %}</mj-raw>',
                         padding + '<mj-raw>{% if p.badges %}</mj-raw>')
    loop = (TEMPLATE_DIR / "digest.mjml").read_text().split("\n").index(
        "        <mj-raw>{% for p in picks %}</mj-raw>") + 1
    assert message.startswith(f"{tmp_path / 't' / 'digest.mjml'} line {loop}: a realistic digest of 10 "
                              "papers is ")
    assert "over the 98,304-byte budget under Gmail's 104,448-byte clipping: only" in message


def test_a_name_the_template_is_not_given_is_refused_on_its_line(tmp_path):
    message, line = refused(tmp_path / "t", "digest.mjml", "{{ heading }}", "{{ lab_name }}")
    assert message.startswith(f"{tmp_path / 't' / 'digest.mjml'} line {line}: lab_name is not given to this "
                              "template (it has: ")


def test_jinja_and_mjml_errors_name_the_file_and_line(tmp_path):
    message, line = refused(tmp_path / "a", "digest.txt", "{% endif %}", "{% endiff %}")
    assert message.startswith(f"{tmp_path / 'a' / 'digest.txt'} line {line}: ")
    message, line = refused(tmp_path / "b", "digest.mjml", "<mj-divider ", "<mj-dividr ")
    assert message == f"{tmp_path / 'b' / 'digest.mjml'} line {line}: not valid MJML: mj-dividr"


def test_a_notice_email_without_its_link_is_refused(tmp_path):
    # the confirmation's button goes nowhere
    message, _ = refused(tmp_path / "t", "email_notice.html", '<a href="{{ url }}"', '<a href="#"')
    lines = (TEMPLATE_DIR / "email_notice.html").read_text().split("\n")
    branch = lines.index('{% if kind == "confirm" %}') + 1
    assert message == (f"{tmp_path / 't' / 'email_notice.html'} line {branch}: the confirmation or manage "
                       "link is left out by a branch of this {% if %}: the template must keep "
                       '<a href="{{ url }}">')


def test_a_page_template_that_does_not_parse_is_refused(tmp_path):
    message, line = refused(tmp_path / "t", "unsubscribe.html", "{% endblock %}", "{% endblok %}")
    assert message.startswith(f"{tmp_path / 't' / 'unsubscribe.html'} line ")


def test_the_shipped_templates_keep_every_rule():
    assert {p.name for p in TEMPLATE_DIR.iterdir()} == {*DIGEST, *NOTICE, *PAGES}
    Renderer().check("https://digest.example.org", 100, 20, 2000)  # the largest digest settings allow


def test_a_templates_dir_that_does_not_exist_is_refused_at_load(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[render]\ntemplates_dir = "{tmp_path / "nope"}"\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "status"])
    assert result.exit_code == 1
    assert result.output == (f"Error: {cfg}: render.templates_dir: no folder '{tmp_path / 'nope'}' (copy the "
                             "templates you change into it: see README, Templates)\n")


# ------------------------------------------------------------------------------------------- pages


def test_a_page_template_override_shows_in_the_served_page_and_the_rest_fall_back(tmp_path):
    folder = tmp_path / "lab"
    copy(folder, "base.html")
    edit(folder / "base.html", "</header>", '<p class="lab">Kim Lab, Department of Cell Biology</p></header>')
    config = f'[digest]\nranker = "lexical"\n[render]\ntemplates_dir = "{folder}"\n'
    with serving(tmp_path, config) as (base, _env, _sink, _tmp):  # `digest serve`, checked at its start
        page = httpx.get(f"{base}/", timeout=30)
        missing = httpx.get(f"{base}/no-such-page", timeout=30)
    assert page.status_code == 200
    assert "Kim Lab, Department of Cell Biology" in page.text  # the admin's base.html
    assert 'name="email"' in page.text  # the shipped subscribe.html, extending it
    assert missing.status_code == 404 and "Kim Lab" in missing.text  # every page extends it
