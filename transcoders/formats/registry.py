"""The registry of transcoder formats: each format says whether a path holds it (by content,
never by a flag) and loads it as this project's `TranscoderSet`.

`load_any` is what the command lines call with `--transcoders PATH_OR_HUB_NAME`: a local path
is sniffed by `detect`; anything else that looks like a hub repository (`owner/name`, optionally
`owner/name/subfolder`) is downloaded with the hub's own client first.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from transcoders.errors import TranscoderError
from transcoders.transcoder_set import LayerHooks, TranscoderSet

log = logging.getLogger(__name__)

Loader = Callable[[Path, Any], TranscoderSet]
"""`load(path, bridge)`: the set at `path`, checked against `bridge` when it is not None."""


@dataclass(frozen=True, kw_only=True)
class Format:
    """A registered format of transcoder files."""

    name: str
    """Key used on the command line and in messages (`circuit-tracer`, `sparsify`, ...)."""
    summary: str
    """One line: who writes it and what it holds."""
    detect: Callable[[Path], bool]
    """True if `path` (a file or directory) holds this format; must be cheap and never raise."""
    load: Loader


FORMATS: dict[str, Format] = {}

_BUILTIN = (
    "transcoders.formats.native",
    "transcoders.formats.circuit_tracer",
    "transcoders.formats.gemma_scope",
    "transcoders.formats.sparsify",
    "transcoders.formats.saelens",
    "transcoders.formats.dunefsky",
)


def register(fmt: Format) -> Format:
    """Add `fmt`; a second format of the same name is refused."""
    if fmt.name in FORMATS:
        raise ValueError(f"duplicate transcoder format: {fmt.name!r}")
    FORMATS[fmt.name] = fmt
    return fmt


def formats() -> dict[str, Format]:
    """Every format, the built-in ones imported (and so registered) on first use."""
    import importlib

    for module in _BUILTIN:
        importlib.import_module(module)
    return FORMATS


def detect(path: Path) -> Format:
    """The one format whose content `path` holds; none or several give one-line errors."""
    path = Path(path)
    if not path.exists():
        raise TranscoderError(f"no transcoder set at {path}: no such file or directory")
    found = [fmt for fmt in formats().values() if fmt.detect(path)]
    if not found:
        listing = _listing(path)
        raise TranscoderError(
            f"{path} is in no known transcoder format (holds {listing}); known formats: "
            f"{', '.join(FORMATS)} (see docs/formats.md)"
        )
    if len(found) > 1:
        names = ", ".join(f.name for f in found)
        raise TranscoderError(f"{path} looks like several formats ({names}); split the files")
    return found[0]


def load_any(
    path_or_name: Path | str, *, bridge: Any = None, model: str | None = None
) -> TranscoderSet:
    """The set at `path_or_name` (a local file or directory of any registered format, or a hub
    repository), checked against `bridge` (a TransformerBridge) when given.

    `model` (a model id) only warns when it differs from the id the set names."""
    path = resolve(path_or_name)
    fmt = detect(path)
    log.info("reading %s as %s", path, fmt.name)
    tset = fmt.load(path, bridge)
    if bridge is not None:
        tset.hooks = [_canonical(hooks, bridge) for hooks in tset.hooks]
        tset.check_fits(bridge)
    if model is not None and model != tset.model:
        log.warning("transcoder set %s names the model %s, not %s", path, tset.model, model)
    return tset


def _canonical(hooks: LayerHooks, bridge: Any) -> LayerHooks:
    """`hooks` under the bridge's canonical names (`blocks.L.hook_mlp_out` is an alias of
    `blocks.L.mlp.hook_out` on GPT-2): a run records activations by canonical name only."""

    def name(hook: str) -> str:
        return getattr(bridge.hook_dict.get(hook), "name", None) or hook

    return replace(hooks, hook_in=name(hooks.hook_in), hook_out=name(hooks.hook_out))


def resolve(path_or_name: Path | str) -> Path:
    """`path_or_name` if it exists here, else the local snapshot of the hub repository it
    names (`resolve_hub_name`)."""
    path = Path(path_or_name).expanduser()
    return path if path.exists() else resolve_hub_name(str(path_or_name))


def resolve_hub_name(name: str) -> Path:
    """The local snapshot of hub repository `owner/name[/subfolder]`, downloaded with the hub's
    client; without the network, one line saying so."""
    parts = name.split("/")
    if len(parts) < 2 or not all(parts) or name.startswith((".", "~")):
        raise TranscoderError(f"no transcoder set at {name}: no such file or directory")
    repo_id, subfolder = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:
        raise TranscoderError(
            f"{name} is not a local path and huggingface_hub is not installed to fetch it"
        ) from err
    try:
        root = snapshot_download(repo_id, allow_patterns=[f"{subfolder}/*"] if subfolder else None)
    except Exception as err:  # the hub client raises many kinds; all mean "not fetched"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TranscoderError(
            f"cannot fetch {repo_id} from the Hugging Face hub ({first}); no network here? "
            "download it where there is one and pass the directory"
        ) from err
    return Path(root) / subfolder if subfolder else Path(root)


def _listing(path: Path) -> str:
    if path.is_file():
        return f"one file, {path.name}"
    names = sorted(p.name for p in path.iterdir())
    return ", ".join(names[:6]) + (", ..." if len(names) > 6 else "") if names else "nothing"
