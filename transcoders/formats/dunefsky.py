"""The GPT-2 small transcoders of Dunefsky et al. (2024): one `torch.save` pickle per layer,
`final_sparse_autoencoder_gpt2-small_blocks.{L}.ln2.hook_normalized_24576.pt`, read without
running any code the pickle names.

Matches jacobdunefsky/transcoder_circuits (commit 8721ff0) `sae_training/sparse_autoencoder.py`:
`save_model` writes `{"cfg": LanguageModelSAERunnerConfig, "state_dict": state_dict()}` with
`torch.save`; `forward` computes `relu((x - b_dec) @ W_enc + b_enc) @ W_dec + b_dec_out` for a
transcoder. The input is `blocks.L.ln2.hook_normalized` of a HookedTransformer with folded
norms, i.e. the residual stream centred and divided by its scale, before ln2's weight and bias:
the bridge's `blocks.L.ln2.hook_normalized` is that same value. The target is `hook_mlp_out` of
a model with centred writing weights, which differs from the bridge's MLP output only by its
mean over d_model (the next norm removes it; error nodes carry it).

The pickle holds a config object of the training code's class; `torch.load(weights_only=True)`
refuses it, so it is admitted as an inert stand-in (a plain attribute bag that runs nothing)
and every other non-tensor global is refused by torch's restricted unpickler. The input bias is
folded into `b_enc` (`transcoders.formats.common.fold_input_bias`).
"""

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from transcoders.errors import TranscoderError
from transcoders.formats.common import (
    LayerWeights,
    build_set,
    fold_input_bias,
    need,
    one_per_layer,
    refuse_extra,
)
from transcoders.formats.registry import Format, register
from transcoders.transcoder_set import LayerHooks, TranscoderSet

FILE = re.compile(r".*blocks\.(\d+)\.ln2\.hook_normalized.*\.pt")
CONFIG_CLASSES = (("sae_training.config", "LanguageModelSAERunnerConfig"),)
"""Where the training code's config class lives; only these names become stand-ins."""
_KEYS = {"W_enc", "b_enc", "W_dec", "b_dec", "b_dec_out"}


def _stand_in(module: str, name: str) -> type:
    """A class pickle can instantiate under `module.name` that only stores its state."""

    def __setstate__(self: Any, state: Any) -> None:
        self.__dict__["state"] = state

    cls = type(name, (), {"__setstate__": __setstate__, "__module__": module})
    cls.__qualname__ = name
    return cls


def read_pickle(file: Path) -> dict[str, Tensor]:
    """The `state_dict` tensors of one layer's pickle; anything unsafe is refused in one line."""
    stand_ins: list[Any] = [_stand_in(m, n) for m, n in CONFIG_CLASSES]
    try:
        with torch.serialization.safe_globals(stand_ins):
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle raises many kinds; each means "not read safely"
        raise TranscoderError(
            f"{file} was not read: it is not a pickle of tensors and plain containers that can "
            f"be loaded without running code ({_reason(err)})"
        ) from err
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise TranscoderError(f"{file} is not a {{'cfg', 'state_dict'}} dict of Dunefsky et al.")
    if extra := sorted(set(obj) - {"cfg", "state_dict"}):
        raise TranscoderError(f"{file}: unexpected entries {extra} next to cfg and state_dict")
    state = obj["state_dict"]
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise TranscoderError(f"{file}: state_dict holds values that are not tensors")
    return dict(state)


def _reason(err: Exception) -> str:
    """The line of torch's long refusal that names what was refused."""
    text = str(err)
    match = re.search(r"unsupported (?:global: )?GLOBAL \S+|unsupported operand \S+", text, re.I)
    if match:
        return match.group(0)
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__


def _files(path: Path) -> dict[int, list[Path]]:
    candidates = [path] if path.is_file() else sorted(path.glob("*.pt")) if path.is_dir() else []
    found: dict[int, list[Path]] = {}
    for file in candidates:
        if match := FILE.fullmatch(file.name):
            found.setdefault(int(match.group(1)), []).append(file)
    return found


def holds_dunefsky(path: Path) -> bool:
    return bool(_files(path))


def load_dunefsky(path: Path, bridge: Any) -> TranscoderSet:
    files = one_per_layer(_files(path), path, "Dunefsky transcoder (.pt)")
    layers = [_read_layer(file) for file in files]
    if bridge is not None and getattr(bridge.cfg, "normalization_type", None) != "LN":
        raise TranscoderError(
            f"{path} holds transcoders for GPT-2's LayerNorm inputs, but the model's "
            f"normalization is {getattr(bridge.cfg, 'normalization_type', None)}"
        )
    hooks = [
        LayerHooks(
            layer=i, hook_in=f"blocks.{i}.ln2.hook_normalized", hook_out=f"blocks.{i}.hook_mlp_out"
        )
        for i in range(len(layers))
    ]
    return build_set(layers, hooks, model="gpt2", source="dunefsky", path=path)


def _read_layer(file: Path) -> LayerWeights:
    tensors = read_pickle(file)
    need(tensors, tuple(sorted(_KEYS)), file)
    refuse_extra(tensors, _KEYS, file)
    if tensors["b_dec"].shape != tensors["W_enc"].shape[:1]:
        raise TranscoderError(
            f"{file}: b_dec has shape {tuple(tensors['b_dec'].shape)}, the input width is "
            f"{tensors['W_enc'].shape[0]}"
        )
    W_enc = tensors["W_enc"].float()
    return LayerWeights(
        W_enc=W_enc,
        b_enc=fold_input_bias(W_enc, tensors["b_enc"].float(), tensors["b_dec"].float()),
        W_dec=tensors["W_dec"],
        b_dec=tensors["b_dec_out"],
        kind="relu",
    )


register(
    Format(
        name="dunefsky",
        summary="GPT-2 small transcoders of Dunefsky et al.: one .pt pickle per layer, ReLU",
        detect=holds_dunefsky,
        load=load_dunefsky,
    )
)
