"""Where the project keeps files it builds: a cache for corpora and a home for zoo models."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """`$CIRCUITS_CACHE`, else `~/.cache/circuits`: corpora and other rebuildable files."""
    return Path(os.environ.get("CIRCUITS_CACHE", Path.home() / ".cache" / "circuits"))


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `final`, moved into place only if the block succeeds.

    An interrupted write leaves no directory at `final` that looks complete.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
