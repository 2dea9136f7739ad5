"""The wheel carries the top-level templates inside the package, and an install from it (not an editable
one) renders with them outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "digest", "templates")


@pytest.mark.slow
def test_the_wheel_ships_the_templates_and_an_install_from_it_renders_outside_the_repo(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:  # a copy: building leaves build/ and *.egg-info behind
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    build = subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(tmp_path / "out"), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "out").glob("trending_digest-*.whl"))
    shipped = sorted(p.name for p in (ROOT / "templates").iterdir())
    with zipfile.ZipFile(wheel) as z:
        assert sorted(n.removeprefix("digest/templates/") for n in z.namelist()
                      if n.startswith("digest/templates/")) == shipped
        assert z.read("digest/templates/digest.mjml") == (ROOT / "templates" / "digest.mjml").read_bytes()

    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    install = subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    check = ("import digest, digest.render as r; from digest.config import Settings; "
             "from digest.usecases.setup import check_templates; check_templates(Settings()); "
             "print(digest.__file__); print(r.TEMPLATE_DIR)")
    ran = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=600,
                         cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(target)})
    assert ran.returncode == 0, ran.stderr
    module, templates = ran.stdout.split()
    assert module == str(target / "digest" / "__init__.py")  # the installed copy, not the checkout
    assert templates == str(target / "digest" / "templates")
