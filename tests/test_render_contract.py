"""The render-once contract, enforced when the templates are compiled: a template may print a
subscriber's own field as it is, never test or transform it (it would see a placeholder, not the
value). A refused template says, in one line, which template, which line and which field."""

from __future__ import annotations

import shutil

import pytest

from digest.render import TEMPLATE_DIR, Renderer
from digest.render.render_once import TemplateContractError


@pytest.fixture
def templates(tmp_path):
    for name in ("digest.mjml", "digest.txt"):
        shutil.copy(str(TEMPLATE_DIR / name), tmp_path / name)
    return tmp_path


def edit(path, old: str, new: str) -> int:
    """Replace the first `old` by `new`; the line it is on."""
    text = path.read_text(encoding="utf-8")
    at = text.index(old)
    path.write_text(text[:at] + new + text[at + len(old):], encoding="utf-8")
    return text[:at].count("\n") + 1


@pytest.mark.parametrize("name,old,new,field", [
    ("digest.mjml", "{{ p.why }}", "{% if p.why %}{{ p.why }}{% endif %}", "p.why"),
    ("digest.mjml", "{{ p.why }}", "{{ p.why|upper }}", "p.why"),
    ("digest.txt", "{{ p.why }}", "{{ p.why ~ '!' }}", "p.why"),
    ("digest.txt", "{{ p.rank }}", "{{ p.rank + 1 }}", "p.rank"),
    ("digest.mjml", "{{ intro }}", "{{ intro|truncate(40) }}", "intro"),
    ("digest.txt", "{{ intro }}", "{% if intro == '' %}-{% endif %}{{ intro }}", "intro"),
    ("digest.mjml", "{{ p.more_url }}", "{{ p.more_url|replace('v=1', 'v=2') }}", "p.more_url"),
])
def test_a_template_that_tests_or_transforms_an_own_field_is_refused_naming_it(templates, name, old, new,
                                                                               field):
    line = edit(templates / name, old, new)
    with pytest.raises(TemplateContractError) as err:
        Renderer(templates)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{templates / name} line {line}: {field} is each subscriber's own")


def test_printing_own_fields_and_testing_a_link_for_presence_are_fine(templates):
    edit(templates / "digest.txt", "{{ p.why }}", "{{ p.why }} ({{ p.rank }}){% if p.less_url %}!{% endif %}")
    # not an own field: shared per form
    edit(templates / "digest.txt", "{{ heading }}", "{{ heading|upper }}")
    Renderer(templates)  # compiles


def test_the_shipped_templates_keep_the_contract():
    Renderer()
