"""The templates live in the top-level `templates/` folder (an admin copies and overrides them there);
a wheel carries them inside the package, as `digest/templates/` (digest.render.templates.shipped).
Everything else is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithTemplates(build_py):
    """build_py, and the top-level templates copied into the built package (an editable install reads
    them from the checkout instead)."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            self.copy_tree("templates", str(Path(self.build_lib) / "digest" / "templates"))


setup(cmdclass={"build_py": BuildWithTemplates})
