"""Natural text available offline: English man pages and Python standard-library docstrings.

Sources and licences: man pages under /usr/share/man/man[1-8] come from the installed Debian
packages, each under its own free licence (mostly GPL, BSD and MIT); docstrings come from the
running interpreter's standard library (PSF licence). Neither is shipped: the corpus builder reads
them from the machine, so the corpus depends on what is installed (recorded in the corpus card).
"""

import ast
import gzip
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

MAN_ROOT = Path("/usr/share/man")

_ROFF_ESCAPES = re.compile(r"\\f[BIRP1-4]|\\f\(..|\\f\[[^]]*\]|\\s[+-]?\d|\\[&|^%]|\\c")
_ROFF_CHARS = {r"\-": "-", r"\(aq": "'", r"\(dq": '"', r"\(em": "--", r"\(en": "-", r"\e": "\\"}
_ROFF_LEFTOVER = re.compile(r"\\\(..|\\\[[^]]*\]|\\.")


def roff_to_text(source: str) -> str:
    """Strip roff requests and escapes from a man page, keeping its prose paragraphs."""
    lines = []
    for line in source.splitlines():
        if line.startswith((".", "'")):
            if line.startswith((".SH", ".SS", ".PP", ".P", ".LP", ".TP", ".IP")):
                lines.append("")
            continue
        for escape, char in _ROFF_CHARS.items():
            line = line.replace(escape, char)
        line = _ROFF_LEFTOVER.sub("", _ROFF_ESCAPES.sub("", line))
        lines.append(line.strip())
    paragraphs = (" ".join(p.split()) for p in "\n".join(lines).split("\n\n"))
    return "\n".join(p for p in paragraphs if len(p) > 40)


def man_pages(rng: random.Random) -> Iterator[str]:
    """Every English man page on the machine as plain text, in a seeded order."""
    paths = sorted(MAN_ROOT.glob("man[1-8]/*.gz"))
    rng.shuffle(paths)
    for path in paths:
        try:
            source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="ignore")
        except (OSError, EOFError):
            continue
        if source.startswith(".so "):  # a link to another page
            continue
        text = roff_to_text(source)
        if text:
            yield text


def docstrings(rng: random.Random) -> Iterator[str]:
    """Docstrings of the standard library's modules, classes and functions, in a seeded order."""
    root = (
        Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    )
    paths = sorted(
        p for p in root.rglob("*.py") if not {"site-packages", "test", "tests"} & set(p.parts)
    )
    rng.shuffle(paths)
    for path in paths:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        nodes = (n for n in ast.walk(tree) if isinstance(n, _DOCUMENTED))
        texts = [ast.get_docstring(n) for n in nodes]
        text = "\n".join(t for t in texts if t and len(t) > 40)
        if text:
            yield text


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def natural_documents(rng: random.Random) -> Iterator[str]:
    """Interleave docstrings and man pages, cut into documents of at most a few thousand chars."""
    sources = [docstrings(rng), man_pages(rng)]
    while sources:
        for source in list(sources):
            text = next(source, None)
            if text is None:
                sources.remove(source)
                continue
            for start in range(0, len(text), 4000):
                yield text[start : start + 4000]
