"""The documentation site builds strictly, and README.md stays a short front page that links it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml
from conftest import REPO

README = REPO / "README.md"
README_MAX_LINES = 250
# A Markdown link's target, up to an optional anchor: [text](target#anchor).
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


def nav_pages(nav: list) -> list[str]:
    """Every page file named in mkdocs.yml's nav, nested sections included."""
    pages = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (site / "index.html").is_file()
    assert (site / "measurements" / "index.html").is_file()


def test_readme_is_short_and_links_every_page():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    targets = set(LINK.findall(text))
    missing = [page for page in nav_pages(config["nav"]) if f"docs/{page}" not in targets]
    assert not missing, f"README.md does not link these pages of the site's nav: {missing}"


def test_readme_links_resolve():
    targets = {t for t in LINK.findall(README.read_text()) if "://" not in t}
    broken = sorted(t for t in targets if not (REPO / t).exists())
    assert not broken, f"README.md links files that do not exist: {broken}"


def test_readme_keeps_the_two_commands():
    text = README.read_text()
    assert "pip install -e . && accelbench run" in text
    assert "pip install -e '.[dev]' && python -m pytest" in text
    assert "pip install -e '.[docs]' && mkdocs serve" in text
