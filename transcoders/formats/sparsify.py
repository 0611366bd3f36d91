"""EleutherAI sparsify transcoders (e.g. `EleutherAI/skip-transcoder-SmolLM2-135M-128x`): one
folder per hook point, each with `cfg.json` and `sae.safetensors`.

Matches EleutherAI/sparsify (commit 9d3b136, June 2026) `sparsify/sparse_coder.py`
(`SparseCoder.load_from_disk`: `cfg.json` with `d_in` and the `SparseCoderConfig` fields of
`sparsify/config.py`; weights `encoder.weight [F, d]`, `encoder.bias [F]`, `W_dec [F, d]`,
`b_dec [d]`, `W_skip [d, d]`; `encode`: `x - b_dec` only when not `transcode`; `forward`:
`decode(...) + x @ W_skip.mT`) and `sparsify/fused_encoder.py` (`topk` of
`relu(F.linear(x, W, b))`, this project's `topk`; `groupmax` is refused). A hook point is a
Hugging Face module name (`layers.3.mlp`, `h.3.mlp`; `sparsify/trainer.py` hooks the module's
input and output), read here as `blocks.3.mlp.hook_in` -> `blocks.3.mlp.hook_out`.
"""

import json
import re
from pathlib import Path
from typing import Any

from transcoders.errors import TranscoderError
from transcoders.formats.common import (
    LayerWeights,
    build_set,
    folders_holding,
    need,
    one_per_layer,
    read_safetensors,
    refuse_extra,
)
from transcoders.formats.registry import Format, register
from transcoders.transcoder_set import LayerHooks, TranscoderSet

CFG, WEIGHTS = "cfg.json", "sae.safetensors"
MLP_MODULE = re.compile(r"(?:.*\.)?(?:layers|h)\.(\d+)\.mlp")
_KEYS = {"encoder.weight", "encoder.bias", "W_dec", "b_dec", "W_skip"}


def holds_sparsify(path: Path) -> bool:
    return bool(folders_holding(path, CFG, WEIGHTS))


def load_sparsify(path: Path, bridge: Any) -> TranscoderSet:
    by_layer: dict[int, list[Path]] = {}
    for folder in folders_holding(path, CFG, WEIGHTS):
        match = MLP_MODULE.fullmatch(folder.name)
        if match is None:
            raise TranscoderError(
                f"{folder}: hook point {folder.name!r} is not an MLP module (layers.L.mlp); "
                "only transcoders of MLPs can replace them"
            )
        by_layer.setdefault(int(match.group(1)), []).append(folder)
    folders = one_per_layer(by_layer, path, "sparsify hook point")
    layers = [_read_layer(folder) for folder in folders]
    hooks = [
        LayerHooks(layer=i, hook_in=f"blocks.{i}.mlp.hook_in", hook_out=f"blocks.{i}.mlp.hook_out")
        for i in range(len(layers))
    ]
    return build_set(layers, hooks, model="unknown (sparsify)", source="sparsify", path=path)


def _read_layer(folder: Path) -> LayerWeights:
    cfg = _read_cfg(folder / CFG)
    tensors = read_safetensors(folder / WEIGHTS)
    need(tensors, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), folder / WEIGHTS)
    refuse_extra(tensors, _KEYS, folder / WEIGHTS)
    if cfg.get("skip_connection", False) != ("W_skip" in tensors):
        raise TranscoderError(f"{folder}: skip_connection in cfg.json disagrees with the weights")
    W_enc = tensors["encoder.weight"].T  # nn.Linear stores [F, d]
    b_enc = tensors["encoder.bias"]
    if not cfg.get("transcode", False):  # an SAE (its encoder reads x - b_dec)
        raise TranscoderError(
            f"{folder}: cfg.json has transcode false: a sparse autoencoder, not a transcoder"
        )
    if cfg.get("d_in") != W_enc.shape[0]:
        raise TranscoderError(
            f"{folder}: cfg.json has d_in {cfg.get('d_in')} but the weights have width "
            f"{W_enc.shape[0]}"
        )
    skip = tensors.get("W_skip")
    return LayerWeights(
        W_enc=W_enc,
        b_enc=b_enc,
        W_dec=tensors["W_dec"],
        b_dec=tensors["b_dec"],
        W_skip=None if skip is None else skip.T,  # applied as x @ W_skip.mT
        kind="topk",
        k=cfg["k"],
    )


def _read_cfg(file: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TranscoderError(f"cannot read {file}: {err}") from err
    if not isinstance(cfg, dict) or "d_in" not in cfg:
        raise TranscoderError(f"{file} is not a sparsify config (no d_in)")
    activation = cfg.get("activation", "topk")
    if activation != "topk":
        raise TranscoderError(f"{file}: activation {activation!r} is not supported (only topk)")
    if not isinstance(cfg.get("k", 32), int) or cfg.get("k", 32) <= 0:
        raise TranscoderError(f"{file}: k must be a positive integer, got {cfg.get('k')!r}")
    cfg.setdefault("k", 32)  # SparseCoderConfig's default
    return cfg


register(
    Format(
        name="sparsify",
        summary="EleutherAI sparsify (skip) transcoders: one folder per hook, cfg.json + "
        "sae.safetensors, TopK",
        detect=holds_sparsify,
        load=load_sparsify,
    )
)
