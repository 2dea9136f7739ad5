"""Where the templates are: the shipped ones, and an admin's folder that overrides any of them file by file.

The shipped templates live in the top-level `templates/` folder of the repository; a wheel carries them
as `digest/templates/` (setup.py copies them there when it builds). `[render] templates_dir` names an
admin's folder (default: `./templates` when it exists); a file it has is used instead of the shipped
one of the same name, a file it lacks falls back to the shipped one. What the overrides must keep is
checked when they are compiled (digest.render.checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# The templates an admin may override, by what they make.
DIGEST = ("digest.mjml", "digest.txt")
NOTICE = ("email_notice.html", "email_notice.txt")
PAGES = ("base.html", "_macros.html", "_cadence.html", "_delivery_status.html", "subscribe.html",
         "check_inbox.html", "confirm.html", "confirmed.html", "preferences.html", "unsubscribe.html",
         "unsubscribed.html", "feedback.html", "error.html")
DEFAULT_DIR = "templates"  # used as the override when it exists in the working directory


def shipped() -> Path:
    """The shipped templates: inside the installed package (a wheel), else the checkout's `templates/`
    (an editable install runs the package from the checkout)."""
    inside = Path(str(resources.files("digest") / "templates"))
    return inside if inside.is_dir() else Path(__file__).resolve().parents[2] / "templates"


@dataclass(frozen=True)
class Folders:
    """The admin's folder (None: the shipped templates alone) in front of the shipped one."""

    override: Path | None
    default: Path

    def path(self, name: str) -> Path:
        """The file used for template `name`: the admin's when their folder has it, else the shipped one."""
        if self.override is not None and (self.override / name).is_file():
            return self.override / name
        return self.default / name

    def overridden(self, name: str) -> bool:
        return self.path(name) != self.default / name

    def search_path(self) -> list[str]:
        """For a jinja2.FileSystemLoader: the admin's folder first."""
        return [str(p) for p in (self.override, self.default) if p is not None]


def folders(templates_dir: str | None) -> Folders:
    """`[render] templates_dir` resolved: that folder, else `./templates` when it exists (when it is
    the shipped folder itself, as in a checkout, nothing is overridden)."""
    default = shipped()
    chosen = Path(templates_dir) if templates_dir else Path(DEFAULT_DIR)
    if not chosen.is_dir() or chosen.resolve() == default.resolve():
        return Folders(None, default)
    return Folders(chosen, default)
