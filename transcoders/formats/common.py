"""What every loader of a published format shares: one layer's weights in this project's
orientation, building a `TranscoderSet` from them, reading tensor files safely, and translating
TransformerLens hook names to the bridge's.

This project computes `f = act(x @ W_enc + b_enc)`, `y = f @ W_dec + b_dec + x @ W_skip`. Each
format's own formula is mapped onto that exactly; in particular an input bias subtracted before
the encoder (`(x - b_in) @ W_enc`) is folded into `b_enc` as `b_enc - b_in @ W_enc`, so the
attribution engine, which reads `W_enc` and `b_enc` directly, stays exact without knowing it.
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from transcoders.config import TranscoderConfig
from transcoders.errors import TranscoderError
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import LayerHooks, TranscoderSet

log = logging.getLogger(__name__)

LAYER_IN_NAME = re.compile(r"layer[s]?[._]?(\d+)")
"""The layer index in a file or folder name: `layer_3`, `layers.3`, `layer3`."""


@dataclass(frozen=True, kw_only=True)
class LayerWeights:
    """One layer's transcoder in this project's orientation and formula (see module docstring)."""

    # Plain `Tensor` fields: `build_set` checks the shapes with messages naming the file.
    W_enc: Tensor  # [d_model, d_transcoder]
    b_enc: Tensor  # [d_transcoder]
    W_dec: Tensor  # [d_transcoder, d_model]
    b_dec: Tensor  # [d_model]
    kind: str
    """An activation kind of `transcoders.activations` (`relu`, `topk`, `jumprelu`, ...)."""
    W_skip: Tensor | None = None  # [d_model, d_model]
    """Applied as `x @ W_skip` (formats that apply `x @ W.T` are transposed on load)."""
    threshold: Tensor | None = None  # [d_transcoder]
    """Per-feature threshold of `jumprelu` (`pre * (pre > threshold)`)."""
    k: int | None = None
    """Active features per token of `topk` and `topk_signed`."""


def fold_input_bias(
    W_enc: Float[Tensor, "d_model d_transcoder"],
    b_enc: Float[Tensor, " d_transcoder"],
    b_in: Float[Tensor, " d_model"],
) -> Float[Tensor, " d_transcoder"]:
    """The encoder bias that makes `x @ W_enc + b` equal `(x - b_in) @ W_enc + b_enc`, computed
    in float64 so that the fold adds no more than float32 rounding."""
    return (b_enc.double() - b_in.double() @ W_enc.double()).to(b_enc.dtype)


def jumprelu_of_relu(threshold: Float[Tensor, " d_transcoder"]) -> Float[Tensor, " d_transcoder"]:
    """For formats computing `relu(pre) * (pre > t)`: the `t'` with `pre * (pre > t')` equal to
    it everywhere (`t' = max(t, 0)`)."""
    return threshold.clamp(min=0.0)


def build_set(
    layers: list[LayerWeights],
    hooks: list[LayerHooks],
    *,
    model: str,
    source: str,
    path: Path,
) -> TranscoderSet:
    """A float32 `TranscoderSet` of `layers`; shapes and values are checked, with one-line
    errors naming `path`."""
    transcoders = []
    for i, weights in enumerate(layers):
        transcoders.append(_transcoder(weights, f"{path} (layer {i})"))
    widths = {t.config.d_model for t in transcoders}
    if len(widths) != 1:
        raise TranscoderError(f"{path}: the layers disagree on d_model: {sorted(widths)}")
    tset = TranscoderSet(
        transcoders, model=model, hooks=hooks, training={"format": source, "path": str(path)}
    )
    return tset.eval()


def _transcoder(weights: LayerWeights, where: str) -> Transcoder:
    d_model, d_transcoder = weights.W_enc.shape
    expected = {
        "W_enc": (d_model, d_transcoder),
        "b_enc": (d_transcoder,),
        "W_dec": (d_transcoder, d_model),
        "b_dec": (d_model,),
        "W_skip": (d_model, d_model),
        "threshold": (d_transcoder,),
    }
    tensors = {
        name: getattr(weights, name) for name in expected if getattr(weights, name) is not None
    }
    for name, value in tensors.items():
        if tuple(value.shape) != expected[name]:
            raise TranscoderError(
                f"{where}: {name} has shape {tuple(value.shape)}, expected {expected[name]} "
                f"from W_enc {tuple(weights.W_enc.shape)} (d_model, d_transcoder)"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise TranscoderError(f"{where}: {name} holds NaN or inf; the file is corrupt")
    if (weights.kind == "jumprelu") != (weights.threshold is not None):
        raise TranscoderError(f"{where}: a threshold is needed by jumprelu and only by it")
    try:
        config = TranscoderConfig(
            kind=weights.kind,
            d_model=d_model,
            d_transcoder=d_transcoder,
            k=weights.k,
            l1_coefficient=0.0 if weights.kind == "relu" else None,
            l0_coefficient=0.0 if weights.kind == "jumprelu" else None,
            skip=weights.W_skip is not None,
            normalize_decoder=False,
        )
    except ValueError as err:
        raise TranscoderError(f"{where}: {err}") from err
    transcoder = Transcoder(config)
    transcoder.load_tensors({k: v.detach().to(torch.float32) for k, v in tensors.items()})
    return transcoder


def folders_holding(path: Path, config: str, weights: str) -> list[Path]:
    """`path` itself if it holds both files, else its subfolders that do (one per hook)."""

    def holds(folder: Path) -> bool:
        return (folder / config).is_file() and (folder / weights).is_file()

    if holds(path):
        return [path]
    return [p for p in sorted(path.iterdir()) if holds(p)] if path.is_dir() else []


def layer_of(name: str, where: Path) -> int:
    """The layer index a file or folder name carries (`layer_3`, `blocks.3.`, `layers.3`)."""
    match = re.search(r"blocks\.(\d+)\.", name) or LAYER_IN_NAME.search(name)
    if match is None:
        raise TranscoderError(f"{where}: cannot tell which layer {name!r} belongs to")
    return int(match.group(1))


def one_per_layer(found: dict[int, list[Path]], root: Path, what: str) -> list[Path]:
    """The files of layers 0..n-1, one each; gaps and layers with several files are refused."""
    if not found:
        raise TranscoderError(f"{root}: no {what} found")
    if several := {i: p for i, p in found.items() if len(p) > 1}:
        layer, paths = min(several.items())
        raise TranscoderError(
            f"{root}: layer {layer} has {len(paths)} {what} files ({paths[0]}, {paths[1]}, ...); "
            "keep one per layer (e.g. one width and L0) in a directory of its own"
        )
    if sorted(found) != list(range(len(found))):
        raise TranscoderError(
            f"{root}: {what} files for layers {sorted(found)}; a set needs layers 0..n-1"
        )
    return [found[i][0] for i in range(len(found))]


def read_safetensors(file: Path) -> dict[str, Tensor]:
    """Every tensor of `file` (safetensors holds no code); unreadable files give one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (OSError, SafetensorError) as err:
        raise TranscoderError(f"cannot read {file}: {err}") from err


def safetensors_keys(file: Path) -> set[str]:
    """The tensor names of `file` without reading the tensors (for detection); empty if it
    cannot be read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            return set(f.keys())
    except (OSError, SafetensorError):
        return set()


def need(tensors: dict[str, Tensor], names: tuple[str, ...], file: Path) -> None:
    """Refuse `file` if it lacks any of `names`."""
    if missing := [n for n in names if n not in tensors]:
        raise TranscoderError(f"{file}: missing tensors {missing} (it has {sorted(tensors)[:8]})")


def refuse_extra(tensors: dict[str, Tensor], known: set[str], file: Path) -> None:
    """Refuse tensors this loader would silently ignore: they change the formula."""
    if extra := sorted(set(tensors) - known):
        raise TranscoderError(f"{file}: unexpected tensors {extra}; not a format read here")


def tl_hooks(
    n_layers: int, hook_in: str, hook_out: str, bridge: Any, *, folded_norms: bool = False
) -> list[LayerHooks]:
    """Bridge hooks of every layer for TransformerLens `HookedTransformer` hook names relative
    to a block (`mlp.hook_in`, `hook_resid_mid`, `ln2.hook_normalized`, `hook_mlp_out`).

    The one name whose meaning differs: in an unfolded HookedTransformer a LayerNorm's
    `hook_normalized` is after its weight and bias (the MLP input), while the bridge's (and a
    folded model's, `folded_norms`) is before them. RMSNorm's is before its weight in both."""
    if hook_in == "ln2.hook_normalized" and not folded_norms and _layer_norm(bridge):
        hook_in = "mlp.hook_in"
    return [
        LayerHooks(layer=i, hook_in=f"blocks.{i}.{hook_in}", hook_out=f"blocks.{i}.{hook_out}")
        for i in range(n_layers)
    ]


def _layer_norm(bridge: Any) -> bool:
    if bridge is None:
        log.warning(
            "no model given: the hook ln2.hook_normalized is taken as is; on a LayerNorm model "
            "pass the model so that it maps to the MLP input"
        )
        return False
    return getattr(bridge.cfg, "normalization_type", None) in ("LN", "LNPre")


def relative_hook(name: str, where: Path) -> str:
    """`mlp.hook_in` from `blocks.3.mlp.hook_in`; names outside a block are refused."""
    match = re.fullmatch(r"blocks\.\d+\.(.+)", name)
    if match is None:
        raise TranscoderError(f"{where}: hook {name!r} is not inside a block (blocks.L....)")
    return match.group(1)
