"""The documentation: the docs site builds strictly, and the README stays the product.

``mkdocs build --strict`` fails on any broken internal link or anchor, a page missing from
the navigation and a missing snippet (``CONTRIBUTING.md`` and ``CHANGELOG.md`` are pulled
into the site), so a page that names a moved file or heading fails here rather than in a
reader's browser. The build is offline and takes about a second, so it runs with the fast
tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

README_MAX_LINES = 200
"""The README is the product page; the reference belongs in the docs site."""

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _local_targets(markdown: Path) -> list[str]:
    """Relative link targets of a markdown file (web links and in-page anchors left out)."""
    targets = []
    for target in _LINK.findall(markdown.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "contributing" / "index.html").is_file()


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines"
    top = "\n".join(lines[:15])
    assert "make demo" in top and "make test" in top


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"])
def test_root_documents_link_to_files_that_exist(name: str) -> None:
    missing = [t for t in _local_targets(ROOT / name) if not (ROOT / t).exists()]
    assert not missing, f"{name} links to missing files: {missing}"
