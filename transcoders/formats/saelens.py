"""SAELens transcoders: `cfg.json` + `sae_weights.safetensors`, one folder per layer (or one
folder for a one-layer set).

Matches jbloomAus/SAELens (commit 91ca16c, October 2025) `sae_lens/saes/transcoder.py`
(`Transcoder`: `relu(x @ W_enc + b_enc) @ W_dec + b_dec` with `W_enc [d_in, d_sae]`,
`W_dec [d_sae, d_out]`, `apply_b_dec_to_input` refused; `SkipTranscoder`: `+ x @ W_skip.T` with
`W_skip [d_out, d_in]`; `JumpReLUTranscoder`: `relu(pre) * (pre > threshold)`), and
`sae_lens/saes/sae.py` / `sae_lens/loading/pretrained_sae_loaders.py` for the config keys
(`architecture`, `d_in`, `d_sae`, `d_out`, `normalize_activations`, `hook_name` and
`hook_name_out` at the top level or under `metadata`; pre-6.0 `hook_point`). Hook names are
TransformerLens names (`blocks.L.ln2.hook_normalized`, `blocks.L.hook_mlp_out`).
`normalize_activations` other than `none` needs a scaling factor the files do not hold, and is
refused.
"""

import json
from pathlib import Path
from typing import Any

from transcoders.errors import TranscoderError
from transcoders.formats.common import (
    LayerWeights,
    build_set,
    folders_holding,
    jumprelu_of_relu,
    layer_of,
    need,
    one_per_layer,
    read_safetensors,
    refuse_extra,
    relative_hook,
    tl_hooks,
)
from transcoders.formats.registry import Format, register
from transcoders.transcoder_set import TranscoderSet

CFG, WEIGHTS = "cfg.json", "sae_weights.safetensors"
ARCHITECTURES = {"transcoder": "relu", "skip_transcoder": "relu", "jumprelu_transcoder": "jumprelu"}


def holds_saelens(path: Path) -> bool:
    return bool(folders_holding(path, CFG, WEIGHTS))


def load_saelens(path: Path, bridge: Any) -> TranscoderSet:
    by_layer: dict[int, list[tuple[Path, dict[str, Any]]]] = {}
    for folder in folders_holding(path, CFG, WEIGHTS):
        cfg = _read_cfg(folder / CFG)
        by_layer.setdefault(layer_of(cfg["hook_name"], folder / CFG), []).append((folder, cfg))
    ordered = one_per_layer(
        {i: [f for f, _ in entries] for i, entries in by_layer.items()}, path, "SAELens"
    )
    cfgs = {folder: cfg for entries in by_layer.values() for folder, cfg in entries}
    hooks_in = {relative_hook(cfgs[f]["hook_name"], f / CFG) for f in ordered}
    hooks_out = {relative_hook(cfgs[f]["hook_name_out"], f / CFG) for f in ordered}
    if len(hooks_in) != 1 or len(hooks_out) != 1:
        raise TranscoderError(
            f"{path}: the layers read or write different hooks ({sorted(hooks_in)} -> "
            f"{sorted(hooks_out)}); a set uses one of each"
        )
    layers = [_read_layer(folder, cfgs[folder]) for folder in ordered]
    hooks = tl_hooks(len(layers), hooks_in.pop(), hooks_out.pop(), bridge)
    model = str(cfgs[ordered[0]].get("model_name") or "unknown (SAELens)")
    return build_set(layers, hooks, model=model, source="saelens", path=path)


def _read_layer(folder: Path, cfg: dict[str, Any]) -> LayerWeights:
    file = folder / WEIGHTS
    tensors = read_safetensors(file)
    kind = ARCHITECTURES[cfg["architecture"]]
    names = ("W_enc", "b_enc", "W_dec", "b_dec")
    names += ("threshold",) if kind == "jumprelu" else ()
    names += ("W_skip",) if cfg["architecture"] == "skip_transcoder" else ()
    need(tensors, names, file)
    refuse_extra(tensors, set(names), file)
    d_in, d_sae, d_out = tensors["W_enc"].shape + tensors["W_dec"].shape[1:]
    if (d_in, d_sae, d_out) != (cfg.get("d_in"), cfg.get("d_sae"), cfg.get("d_out", d_in)):
        raise TranscoderError(
            f"{folder}: cfg.json says d_in {cfg.get('d_in')}, d_sae {cfg.get('d_sae')}, d_out "
            f"{cfg.get('d_out')} but the weights are {d_in}, {d_sae}, {d_out}"
        )
    skip = tensors.get("W_skip")
    threshold = tensors.get("threshold")
    return LayerWeights(
        W_enc=tensors["W_enc"],
        b_enc=tensors["b_enc"],
        W_dec=tensors["W_dec"],
        b_dec=tensors["b_dec"],
        W_skip=None if skip is None else skip.T,  # [d_out, d_in], applied as x @ W_skip.T
        threshold=None if threshold is None else jumprelu_of_relu(threshold),
        kind=kind,
    )


def _read_cfg(file: Path) -> dict[str, Any]:
    """The config with metadata fields lifted and pre-6.0 names renamed, validated."""
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TranscoderError(f"cannot read {file}: {err}") from err
    if not isinstance(cfg, dict):
        raise TranscoderError(f"{file} is not a SAELens config")
    metadata = cfg.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    for key in ("hook_name", "hook_name_out", "model_name"):
        cfg.setdefault(key, metadata.get(key))
    if cfg.get("hook_name") is None:
        cfg["hook_name"] = cfg.get("hook_point")
    architecture = cfg.get("architecture", "standard")
    if architecture not in ARCHITECTURES:
        raise TranscoderError(
            f"{file}: architecture {architecture!r} is not a transcoder read here "
            f"({', '.join(ARCHITECTURES)}); SAEs cannot replace MLPs"
        )
    if cfg.get("apply_b_dec_to_input"):
        raise TranscoderError(f"{file}: apply_b_dec_to_input is not valid for SAELens transcoders")
    if cfg.get("normalize_activations", "none") != "none":
        raise TranscoderError(
            f"{file}: normalize_activations {cfg['normalize_activations']!r} needs a scaling "
            "the files do not hold; fold it into the weights (SAELens "
            "fold_activation_norm_scaling_factor) and save again"
        )
    for key in ("hook_name", "hook_name_out"):
        if not isinstance(cfg.get(key), str):
            raise TranscoderError(f"{file}: {key} is missing; a transcoder config names both hooks")
    return cfg


register(
    Format(
        name="saelens",
        summary="SAELens transcoders: cfg.json + sae_weights.safetensors (relu, skip, jumprelu)",
        detect=holds_saelens,
        load=load_saelens,
    )
)
