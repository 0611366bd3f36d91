"""circuit-tracer's per-layer transcoder directories, read and written; its cross-layer
transcoders detected and refused.

Matches decoderesearch/circuit-tracer (commit 4bb8c0e, April 2026):
`circuit_tracer/utils/hf_utils.py` (`load_transcoders`: `config.yaml` with `model_kind`
`transcoder_set`, `feature_input_hook`, `feature_output_hook`, optional `activation` and `k`,
files from the `transcoders` list or `layer_{i}.safetensors`) and
`circuit_tracer/transcoder/single_layer_transcoder.py` (`SingleLayerTranscoder.encode`:
`F.linear(x, W_enc, b_enc)` with `W_enc [F, d]`; `decode`: `f @ W_dec + b_dec` with
`W_dec [F, d]`; `compute_skip`: `x @ W_skip.T`; `load_transcoder`: JumpReLU when
`activation_function.threshold` is in the file, else ReLU, or `TopK(k)` when the config says
`activation: topk`; `to_safetensors` for the key names written). Its `TopK` keeps negative
values among the k largest (`activation_functions.py`), read here as kind `topk_signed`, unless
the config carries this project's extension `topk_relu: true` (see `export_circuit_tracer`). Its
JumpReLU is `x * (x > threshold)`, this project's `jumprelu`. Files in the Gemma Scope formats
that a config lists are read by `gemma_scope` (its `special_load_fn`).
"""

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from transcoders.errors import TranscoderError
from transcoders.formats import gemma_scope
from transcoders.formats.common import (
    LayerWeights,
    build_set,
    need,
    read_safetensors,
    refuse_extra,
    relative_hook,
    tl_hooks,
)
from transcoders.formats.registry import Format, register
from transcoders.transcoder_set import TranscoderSet

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
PLT_KIND = "transcoder_set"
CLT_KIND = "cross_layer_transcoder"
THRESHOLD = "activation_function.threshold"
TOPK_RELU = "topk_relu"
"""An extension key this project writes for its own topk (ReLU after the top k) and reads back
exactly; circuit-tracer ignores it and computes its signed TopK."""
_KEYS = {"W_enc", "W_dec", "b_enc", "b_dec", "W_skip", THRESHOLD, "k"}


def read_config(path: Path) -> dict[str, Any] | None:
    """The parsed config.yaml of `path`, or None if there is none or it is not a mapping."""
    import yaml

    file = path / CONFIG
    if not file.is_file():
        return None
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def holds_plt(path: Path) -> bool:
    config = read_config(path) if path.is_dir() else None
    return config is not None and config.get("model_kind") == PLT_KIND


def holds_clt(path: Path) -> bool:
    """A CLT directory: `model_kind: cross_layer_transcoder`, or `W_enc_{i}.safetensors` files."""
    if not path.is_dir():
        return False
    config = read_config(path)
    if config is not None and "model_kind" in config:
        return config["model_kind"] == CLT_KIND
    return (path / "W_enc_0.safetensors").is_file()


def refuse_clt(path: Path, bridge: Any) -> TranscoderSet:
    raise TranscoderError(
        f"{path} holds a cross-layer transcoder (CLT); CLTs are not supported yet, only "
        "per-layer transcoders"
    )


def load_plt(path: Path, bridge: Any) -> TranscoderSet:
    """The per-layer set at `path` (see the module docstring for the formula)."""
    config = read_config(path)
    assert config is not None
    for key in ("feature_input_hook", "feature_output_hook"):
        if not isinstance(config.get(key), str):
            raise TranscoderError(f"{path / CONFIG}: {key} is missing or not a string")
    files = _layer_files(path, config)
    activation = config.get("activation")
    if activation not in (None, "relu", "topk", "jumprelu"):
        raise TranscoderError(
            f"{path / CONFIG}: activation {activation!r} is not one circuit-tracer loads "
            "(relu, topk, or none for JumpReLU thresholds in the files)"
        )
    layers = [_read_layer(file, config) for file in files]
    hooks = tl_hooks(
        len(layers), config["feature_input_hook"], config["feature_output_hook"], bridge
    )
    model = str(config.get("model_name") or "unknown")
    return build_set(layers, hooks, model=model, source="circuit-tracer", path=path)


def _layer_files(path: Path, config: dict[str, Any]) -> list[Path]:
    listed = config.get("transcoders")
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise TranscoderError(f"{path / CONFIG}: transcoders must be a list of file paths")
        if remote := [p for p in listed if p.startswith("hf://")]:
            raise TranscoderError(
                f"{path / CONFIG} lists hub files ({remote[0]}, ...); download them with "
                "circuit-tracer's cache (save_transcoders_to_cache) and pass that directory"
            )
        files = [(path / p) if not Path(p).is_absolute() else Path(p) for p in listed]
    else:
        n = len(list(path.glob("layer_*.safetensors")))
        files = [path / f"layer_{i}.safetensors" for i in range(n)]
    if not files:
        raise TranscoderError(
            f"{path}: config.yaml lists no transcoders and no layer_*.safetensors"
        )
    if missing := [f for f in files if not f.is_file()]:
        raise TranscoderError(f"{path}: missing {missing[0].name}; the set needs layers 0..n-1")
    return files


def _read_layer(file: Path, config: dict[str, Any]) -> LayerWeights:
    if gemma_scope.is_gemma_scope_file(file):
        return gemma_scope.read_layer(file)
    tensors = read_safetensors(file)
    need(tensors, ("W_enc", "W_dec", "b_enc", "b_dec"), file)
    refuse_extra(tensors, _KEYS, file)
    kind, k, threshold = _activation(tensors, config, file)
    skip = tensors.get("W_skip")
    return LayerWeights(
        W_enc=tensors["W_enc"].T,  # stored [F, d], used as F.linear(x, W_enc)
        b_enc=tensors["b_enc"],
        W_dec=tensors["W_dec"],
        b_dec=tensors["b_dec"],
        W_skip=None if skip is None else skip.T,  # applied as x @ W_skip.T
        threshold=threshold,
        kind=kind,
        k=k,
    )


def _activation(
    tensors: dict[str, Tensor], config: dict[str, Any], file: Path
) -> tuple[str, int | None, Tensor | None]:
    """(kind, k, threshold) as circuit-tracer's `load_transcoder_set` picks them."""
    activation = config.get("activation")
    if activation == "topk":
        k = config.get("k")
        if k is None and "k" in tensors:
            k = int(tensors["k"].item())
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise TranscoderError(f"{file}: activation topk needs a positive integer k, got {k!r}")
        return ("topk" if config.get(TOPK_RELU) is True else "topk_signed"), k, None
    if activation == "relu":
        return "relu", None, None
    if THRESHOLD in tensors:
        return "jumprelu", None, tensors[THRESHOLD]
    return "relu", None, None


def export_circuit_tracer(tset: TranscoderSet, out: Path) -> Path:
    """Write `tset` as a circuit-tracer per-layer directory at `out` (a new directory).

    relu and jumprelu sets (batchtopk: its inference thresholds) are written exactly. A topk
    set is written as circuit-tracer's `activation: topk` plus `topk_relu: true`: this project
    reads it back exactly, while circuit-tracer ignores the extension and keeps a negative value
    among the k largest where this project's topk zeroes it (the two agree wherever the k-th
    largest pre-activation is positive)."""
    import yaml
    from safetensors.torch import save_file

    from circuits.paths import atomic_dir

    hook_in = {relative_hook(h.hook_in, out) for h in tset.hooks}
    hook_out = {relative_hook(h.hook_out, out) for h in tset.hooks}
    kinds = {t.config.kind for t in tset}
    ks = {t.config.k for t in tset}
    if len(hook_in) != 1 or len(hook_out) != 1 or len(kinds) != 1 or len(ks) != 1:
        raise TranscoderError(
            "circuit-tracer's config.yaml holds one input hook, one output hook and one "
            f"activation for all layers; this set has {sorted(hook_in)}, {sorted(hook_out)}, "
            f"kinds {sorted(kinds)}"
        )
    (kind,) = kinds
    config: dict[str, Any] = {
        "model_kind": PLT_KIND,
        "model_name": tset.model,
        "feature_input_hook": hook_in.pop(),
        "feature_output_hook": hook_out.pop(),
    }
    if kind in ("topk", "topk_signed"):
        config |= {"activation": "topk", "k": ks.pop()}
        if kind == "topk":
            config[TOPK_RELU] = True
            log.warning(
                "topk is written as circuit-tracer's TopK, which keeps negative values among "
                "the k largest (this project zeroes them; `topk_relu: true` records that)"
            )
    elif kind == "relu":
        config["activation"] = "relu"
    elif kind not in ("jumprelu", "batchtopk"):
        raise TranscoderError(f"kind {kind!r} has no circuit-tracer equivalent")
    with atomic_dir(out, kind="circuit_tracer_transcoders") as tmp:
        for i, transcoder in enumerate(tset):
            save_file(_layer_tensors(transcoder), str(tmp / f"layer_{i}.safetensors"))
        (tmp / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


def _layer_tensors(transcoder: Any) -> dict[str, Tensor]:
    tensors = {
        "W_enc": transcoder.W_enc.detach().T.contiguous(),
        "W_dec": transcoder.W_dec.detach().contiguous(),
        "b_enc": transcoder.b_enc.detach().contiguous(),
        "b_dec": transcoder.b_dec.detach().contiguous(),
    }
    if transcoder.W_skip is not None:
        tensors["W_skip"] = transcoder.W_skip.detach().T.contiguous()
    if transcoder.config.kind in ("jumprelu", "batchtopk"):
        assert transcoder.threshold is not None
        tensors[THRESHOLD] = transcoder.threshold.detach().contiguous()
    return {k: v.to(torch.float32) for k, v in tensors.items()}


register(
    Format(
        name="circuit-tracer",
        summary="circuit-tracer per-layer transcoders: config.yaml + layer_{i}.safetensors",
        detect=holds_plt,
        load=load_plt,
    )
)
register(
    Format(
        name="circuit-tracer-clt",
        summary="circuit-tracer cross-layer transcoders (W_enc_{i}/W_dec_{i}): refused for now",
        detect=holds_clt,
        load=refuse_clt,
    )
)
