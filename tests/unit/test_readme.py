"""The README's Python runs as written, and every relative link of the README and docs/ resolves."""

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
"""A markdown link or image; group 1 is its target."""


def python_blocks(text: str) -> list[str]:
    return PYTHON_BLOCK.findall(text)


def relative_links(path: Path) -> list[str]:
    """Targets of the links in `path` that point into the repository (no scheme, not an anchor
    of the same page), without their `#fragment`."""
    targets = (m.group(1) for m in LINK.finditer(path.read_text()))
    return [
        t.split("#")[0]
        for t in targets
        if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")
    ]


def test_readme_has_a_python_snippet() -> None:
    assert python_blocks(README.read_text()), "README.md has no ```python block"


@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))))
def test_readme_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each block runs from a scratch directory that sees the repository's task files, as it
    would from the repository root (where the README says to run it), writing only there."""
    (tmp_path / "tasks").symlink_to(ROOT / "tasks")
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(python_blocks(README.read_text())[index])
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    missing = [t for t in relative_links(page) if t and not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_link_pattern_finds_links_and_skips_urls(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "[a](docs/a.md#part) ![b](b.png) [c](https://example.org/x) [d](#top) [e](mailto:x@y)"
    )
    assert relative_links(page) == ["docs/a.md", "b.png"]
