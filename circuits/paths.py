"""Where the project keeps files it builds, and how it writes a directory: whole or not at all,
and never over anything it did not write itself.

Every artifact directory this tool writes carries a marker file (`MARKER`) naming its kind and
the entries it wrote. A directory may be replaced only when it carries the marker of the same
kind and holds nothing else, or when it lies inside the tool's own cache (corpora, feature atlases,
checkpoints). The shipped zoo models carry markers too. Anything else (a user's folder, a plain
file, the current directory) is refused with one line naming the path and the fix.
"""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from circuits.errors import OutputPathError

PACKAGE_ROOT = Path(__file__).resolve().parent

MARKER = ".circuits-artifact.json"
"""The file that marks a directory as written by this tool: its kind and the entries written."""
MARKER_SCHEMA_VERSION = 1


def cache_dir() -> Path:
    """`$CIRCUITS_CACHE`, else `~/.cache/circuits`: corpora and other rebuildable files."""
    return Path(os.environ.get("CIRCUITS_CACHE", Path.home() / ".cache" / "circuits"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def dir_mode() -> int:
    """The mode a directory made by `mkdir` would get under the user's umask."""
    return 0o777 & ~_umask()


def file_mode() -> int:
    """The mode a file made by `open` would get under the user's umask."""
    return 0o666 & ~_umask()


def in_cache(path: Path) -> bool:
    """Whether `path` lies inside the tool's own cache, which it may always rewrite."""
    return cache_dir().resolve() in path.resolve().parents


def read_marker(path: Path) -> dict | None:
    """The marker of the directory `path` (kind, schema version, entries), or None."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def check_output_dir(final: Path, *, kind: str, what: str = "--out") -> Path:
    """Refuse, before any work, an output directory this tool could not safely write.

    Returns `final` resolved. Refused: the current directory or one of its parents; a path under
    a file; an existing file; an existing directory that is not empty and is neither in the
    tool's cache nor marked as a `kind` directory holding only what the tool wrote (its entries,
    and directories with markers of their own, such as a model's transcoder set).
    """
    resolved = Path(final).expanduser().resolve()
    here = Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise OutputPathError(
            f"{what} {final} is the current directory or one of its parents; "
            "name a new directory, e.g. out/run"
        )
    for parent in resolved.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"{what} {final} lies under {parent}, which is a file")
        if parent.exists():
            _probe(parent, what, final)
            break
    if not resolved.exists() and not resolved.is_symlink():
        return resolved
    if not resolved.is_dir() or resolved.is_symlink():
        raise OutputPathError(
            f"{what} {final} exists and is not a directory this tool wrote; "
            "choose a new path or move it away yourself"
        )
    if in_cache(resolved) or not any(resolved.iterdir()):
        return resolved
    marker = read_marker(resolved)
    if marker is None:
        raise OutputPathError(
            f"{what} {final} is a directory this tool did not write (no {MARKER}); "
            "choose a new path, or move it away yourself"
        )
    if marker.get("kind") != kind:
        raise OutputPathError(
            f"{what} {final} holds a {marker.get('kind')!r} written by this tool, not a {kind!r}; "
            "choose another path"
        )
    written = {MARKER, *marker.get("entries", [])}
    extra = sorted(
        p.name for p in resolved.iterdir() if p.name not in written and read_marker(p) is None
    )
    if extra:
        shown = ", ".join(extra[:3]) + (", ..." if len(extra) > 3 else "")
        raise OutputPathError(
            f"{what} {final} holds files this tool did not write ({shown}); move them out "
            "or choose another path"
        )
    return resolved


def _probe(existing: Path, what: str, final: Path) -> None:
    """Refuse a place where no directory can be made (read-only, /proc), by making one."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".circuits-probe-", dir=existing))
    except OSError as err:
        raise OutputPathError(
            f"cannot create {what} {final}: {err.strerror or err} (in {existing}); "
            "choose a place you can write"
        ) from err


def _make_temp_dir(parent: Path, prefix: str) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, dir_mode())  # mkdtemp makes 0700
    return tmp


@contextmanager
def atomic_dir(final: Path, *, kind: str, what: str = "--out") -> Iterator[Path]:
    """Yield a temporary directory beside `final`, moved into place only if the block succeeds.

    `final` is checked first (`check_output_dir`) and again before the move. A failure or an
    interrupt inside the block leaves nothing behind: neither `final` nor the temporary
    directory. The directory gets the user's umask and the marker of `kind`.
    """
    final = check_output_dir(final, kind=kind, what=what)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _make_temp_dir(final.parent, f".{final.name}.partial-")
    except OSError as err:
        raise OutputPathError(f"cannot create {what} {final}: {err.strerror or err}") from err
    try:
        yield tmp
        entries = sorted(p.name for p in tmp.iterdir())
        marker = {"kind": kind, "schema_version": MARKER_SCHEMA_VERSION, "entries": entries}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _give_umask(tmp)
        check_output_dir(final, kind=kind, what=what)
        _swap_into_place(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _give_umask(root: Path) -> None:
    """Give every directory and file under `root` the user's umask: some writers (safetensors,
    mkdtemp) make them private."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, dir_mode() if path.is_dir() else file_mode())


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`; a previous `final` is moved aside first, then deleted."""
    if not final.exists():
        os.replace(tmp, final)
        return
    old = _make_temp_dir(final.parent, f".{final.name}.old-")
    try:
        os.replace(final, old / "previous")
        os.replace(tmp, final)
    except BaseException:
        if (old / "previous").exists() and not final.exists():
            os.replace(old / "previous", final)  # put the previous directory back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def write_file_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary sibling of `path`, then rename it into place (user's umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def check_output_file(path: Path, *, kind: str, what: str = "--out") -> Path:
    """Refuse, before any work, an output file that exists and is not a JSON file of `kind`
    written by this tool (its `kind` key), or that lies under a file. Returns it resolved."""
    resolved = Path(path).expanduser().resolve()
    for parent in resolved.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"{what} {path} lies under {parent}, which is a file")
        if parent.exists():
            break
    if not resolved.exists():
        return resolved
    try:
        written = json.loads(resolved.read_text()).get("kind") == kind
    except (OSError, ValueError, AttributeError):
        written = False
    if resolved.is_dir() or not written:
        raise OutputPathError(
            f"{what} {path} exists and is not a {kind!r} file this tool wrote; "
            "choose a new path or move it away yourself"
        )
    return resolved


def record_in_marked_parent(path: Path) -> None:
    """Record `path`, just written by this tool, in the marker of the nearest marked directory
    above it (`model/reference/ioi.json` -> `reference` in the model's entries), so that
    directory stays one the tool may replace."""
    path = Path(path).resolve()
    for parent in path.parents:
        marker = read_marker(parent)
        if marker is not None:
            entry = path.relative_to(parent).parts[0]
            if entry not in marker.get("entries", []):
                marker["entries"] = sorted([*marker.get("entries", []), entry])
                write_file_atomic(parent / MARKER, (json.dumps(marker, indent=1) + "\n").encode())
            return


def model_slug(model_spec: str) -> str:
    """A directory name for a model spec: `zoo:small` -> `small`, `./dir/m` -> `m`."""
    name = model_spec.removeprefix("zoo:").rstrip("/").split("/")[-1]
    return name or "model"
