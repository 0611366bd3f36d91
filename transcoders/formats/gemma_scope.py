"""Gemma Scope transcoders (Gemma-2, `params.npz`) and Gemma Scope 2 transcoders (Gemma-3,
safetensors with lower-case keys, with or without an affine skip), as Google publishes them:
one file per layer under `layer_{L}...` folders.

Matches decoderesearch/circuit-tracer `circuit_tracer/transcoder/single_layer_transcoder.py`
(`load_gemma_scope_transcoder`: npz `W_enc [d, F]`, `W_dec [F, d]`, `b_enc`, `b_dec`,
`threshold`; `load_gemma_scope_2_transcoder`: `w_enc [d, F]`, `w_dec [F, d]`, `b_enc`, `b_dec`,
`threshold`, optional `affine_skip_connection [d, d]`, which circuit-tracer transposes and
applies as `x @ W_skip.T`, i.e. `x @ affine_skip_connection`), and the JumpReLU of Google's
Gemma Scope tutorial (`relu(pre) * (pre > threshold)`; circuit-tracer's `pre * (pre > t)` is the
same for the non-negative thresholds published). Hooks: `ln2.hook_normalized` ->
`hook_mlp_out`, as circuit-tracer's `configs/gemmascope-l0-0.yaml` and jbloomAus/SAELens
`sae_lens/loading/pretrained_sae_loaders.py` (`get_gemma_2_transcoder_config_from_hf`) say; a
circuit-tracer `config.yaml` next to the files names other hooks (see `circuit_tracer`).
"""

from pathlib import Path
from typing import Any

import torch

from transcoders.errors import TranscoderError
from transcoders.formats.common import (
    LayerWeights,
    build_set,
    jumprelu_of_relu,
    layer_of,
    need,
    one_per_layer,
    read_safetensors,
    refuse_extra,
    safetensors_keys,
    tl_hooks,
)
from transcoders.formats.registry import Format, register
from transcoders.transcoder_set import TranscoderSet

HOOK_IN, HOOK_OUT = "ln2.hook_normalized", "hook_mlp_out"
NPZ = "params.npz"
GS1_KEYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
GS2_KEYS = ("w_enc", "w_dec", "b_enc", "b_dec", "threshold")
GS2_SKIP = "affine_skip_connection"


def is_gemma_scope_file(file: Path) -> bool:
    """An npz file, or a safetensors file with Gemma Scope 2's lower-case keys."""
    if file.suffix == ".npz":
        return True
    return file.suffix == ".safetensors" and "w_enc" in safetensors_keys(file)


def read_layer(file: Path) -> LayerWeights:
    """One layer of either Gemma Scope format (see the module docstring)."""
    if file.suffix == ".npz":
        return _read_npz(file)
    tensors = read_safetensors(file)
    need(tensors, GS2_KEYS, file)
    refuse_extra(tensors, {*GS2_KEYS, GS2_SKIP}, file)
    return LayerWeights(
        W_enc=tensors["w_enc"],
        b_enc=tensors["b_enc"],
        W_dec=tensors["w_dec"],
        b_dec=tensors["b_dec"],
        W_skip=tensors.get(GS2_SKIP),
        threshold=jumprelu_of_relu(tensors["threshold"]),
        kind="jumprelu",
    )


def _read_npz(file: Path) -> LayerWeights:
    import numpy as np

    try:
        with np.load(file, allow_pickle=False) as params:  # no pickled objects: no code runs
            tensors = {k: torch.from_numpy(np.asarray(params[k])) for k in params.files}
    except (OSError, ValueError) as err:
        raise TranscoderError(f"cannot read {file}: {err}") from err
    need(tensors, GS1_KEYS, file)
    refuse_extra(tensors, set(GS1_KEYS), file)
    return LayerWeights(
        W_enc=tensors["W_enc"],
        b_enc=tensors["b_enc"],
        W_dec=tensors["W_dec"],
        b_dec=tensors["b_dec"],
        threshold=jumprelu_of_relu(tensors["threshold"]),
        kind="jumprelu",
    )


def _files(path: Path, gs2: bool) -> dict[int, list[Path]]:
    """The layer files under `path`, by the layer their relative path names."""
    if not path.is_dir() or any(
        (path / n).exists() for n in ("config.yaml", "config.json", "cfg.json")
    ):
        return {}
    pattern = "*.safetensors" if gs2 else NPZ
    found: dict[int, list[Path]] = {}
    for file in sorted(path.rglob(pattern)):
        if gs2 and "w_enc" not in safetensors_keys(file):
            continue
        relative = file.relative_to(path).as_posix()
        found.setdefault(layer_of(relative, path), []).append(file)
    return found


def _loader(gs2: bool, source: str):
    def load(path: Path, bridge: Any) -> TranscoderSet:
        files = one_per_layer(_files(path, gs2), path, "Gemma Scope 2" if gs2 else NPZ)
        layers = [read_layer(f) for f in files]
        hooks = tl_hooks(len(layers), HOOK_IN, HOOK_OUT, bridge)
        return build_set(layers, hooks, model="unknown (Gemma Scope)", source=source, path=path)

    return load


def _detector(gs2: bool):
    def detect(path: Path) -> bool:
        try:
            return bool(_files(path, gs2))
        except TranscoderError:
            return True  # files of the format whose layer is unclear: the loader says so

    return detect


register(
    Format(
        name="gemma-scope",
        summary="Gemma Scope transcoders (Gemma-2): layer_{L}/.../params.npz, JumpReLU",
        detect=_detector(False),
        load=_loader(False, "gemma-scope"),
    )
)
register(
    Format(
        name="gemma-scope-2",
        summary="Gemma Scope 2 transcoders (Gemma-3): layer_{L} safetensors, JumpReLU, "
        "optional affine skip",
        detect=_detector(True),
        load=_loader(True, "gemma-scope-2"),
    )
)
