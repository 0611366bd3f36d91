"""A transcoder set: one transcoder per MLP layer of one model, saved as a directory.

```
<dir>/config.json          kind "transcoder_set", schema_version, model id, hooks, per-layer
                           configs, weights dtype, training summary
<dir>/weights.safetensors  layers.<L>.W_enc, .b_enc, .W_dec, .b_dec (, .W_skip, .threshold)
```

Weights may be stored in float16 or bfloat16 to keep shipped sets small; they are always loaded
back as float32. The set registered for a model lives in `<model dir>/transcoders/`.
"""

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from circuits.errors import ModelSpecError
from circuits.hooks import Hook
from circuits.models import ZOO_PREFIX, resolve_model_dir
from circuits.paths import atomic_dir
from transcoders.config import TranscoderConfig
from transcoders.errors import TranscoderError
from transcoders.transcoder import Transcoder

log = logging.getLogger(__name__)

KIND = "transcoder_set"
SCHEMA_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
REGISTERED_DIR = "transcoders"
"""Name of the directory inside a model directory that holds the model's registered set."""
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CONFIG_KEYS = {
    "kind",
    "schema_version",
    "model",
    "d_model",
    "n_layers",
    "hooks",
    "transcoders",
    "weights_dtype",
    "training",
}


@dataclass(frozen=True, kw_only=True)
class LayerHooks:
    """Where one layer's transcoder reads and writes in the model."""

    layer: int
    """Index of the transformer block."""
    hook_in: str
    """Hook of the MLP input the transcoder reads."""
    hook_out: str
    """Hook of the MLP output the transcoder predicts."""

    def rewriting(self, rewrite: Callable[[Tensor, Tensor], Tensor]) -> list[Hook]:
        """Forward hooks that hand this layer's MLP input and output to `rewrite(x, out)` on
        each pass and put what it returns in place of the output."""
        inputs: list[Tensor] = []

        def read(x: Tensor, hook: Any) -> Tensor:
            inputs.append(x)
            return x

        def write(out: Tensor, hook: Any) -> Tensor:
            return rewrite(inputs.pop(), out)

        return [(self.hook_in, read), (self.hook_out, write)]


def mlp_hooks(n_layers: int) -> list[LayerHooks]:
    """The canonical MLP input and output hooks of every layer of a TransformerBridge."""
    return [
        LayerHooks(layer=i, hook_in=f"blocks.{i}.mlp.hook_in", hook_out=f"blocks.{i}.mlp.hook_out")
        for i in range(n_layers)
    ]


class TranscoderSet(nn.Module):
    """One transcoder per MLP layer, the hooks they attach to, and the model they belong to."""

    def __init__(
        self,
        transcoders: Sequence[Transcoder],
        *,
        model: str,
        hooks: Sequence[LayerHooks] | None = None,
        training: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not transcoders:
            raise ValueError("a transcoder set needs at least one transcoder")
        widths = {t.config.d_model for t in transcoders}
        if len(widths) != 1:
            raise ValueError(f"transcoders of one set must share d_model, got {sorted(widths)}")
        hooks = list(hooks) if hooks is not None else mlp_hooks(len(transcoders))
        if len(hooks) != len(transcoders):
            raise ValueError(f"{len(transcoders)} transcoders but {len(hooks)} hooks")
        self.layers = nn.ModuleList(transcoders)
        self.model = model
        """Id of the model the set was trained on (see `model_id`)."""
        self.hooks = hooks
        self.training_summary: dict[str, Any] = dict(training or {})

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def d_model(self) -> int:
        return self[0].config.d_model

    def __getitem__(self, layer: int) -> Transcoder:
        transcoder = self.layers[layer]
        assert isinstance(transcoder, Transcoder)
        return transcoder

    def __iter__(self) -> Iterator[Transcoder]:
        return (self[i] for i in range(self.n_layers))

    def __len__(self) -> int:
        return self.n_layers

    def check_fits(self, bridge: Any) -> None:
        """Raise naming the first mismatch between this set and `bridge` (a TransformerBridge):
        d_model, number of layers, or a hook the model does not have."""
        cfg = bridge.cfg
        if cfg.d_model != self.d_model:
            raise TranscoderError(
                f"the transcoder set (trained on {self.model}) has d_model {self.d_model} but "
                f"the model has d_model {cfg.d_model}; train a set for this model"
            )
        if cfg.n_layers != self.n_layers:
            raise TranscoderError(
                f"the transcoder set (trained on {self.model}) has {self.n_layers} layers but "
                f"the model has n_layers {cfg.n_layers}; train a set for this model"
            )
        for hooks in self.hooks:
            for name in (hooks.hook_in, hooks.hook_out):
                if name not in bridge.hook_dict:
                    raise TranscoderError(
                        f"hook {name} of the transcoder set (layer {hooks.layer}) does not exist "
                        "in the model"
                    )


def model_id(spec: str) -> str:
    """A stable name for the model `spec` names: `zoo:<name>` for zoo models (aliases such as
    `zoo:default` resolved), a directory's name for local models, else the hub name."""
    if spec.startswith(ZOO_PREFIX):
        from circuits.zoo.registry import zoo_model

        return ZOO_PREFIX + zoo_model(spec.removeprefix(ZOO_PREFIX)).name
    path = Path(spec).expanduser()
    return path.resolve().name if path.exists() else spec


def default_transcoders_dir(spec: str, *, must_exist: bool = True) -> Path:
    """`<model dir>/transcoders`, where the set registered for the model `spec` lives.

    Raises TranscoderError for hub models (no local directory), and, with `must_exist`, when no
    set has been trained there yet, saying how to train one.
    """
    try:
        model_dir = resolve_model_dir(spec)
    except ModelSpecError as err:
        raise TranscoderError(str(err)) from err
    if model_dir is None:
        # Called before the model loads, by commands that read a set (--transcoders) and by
        # `transcoders train` (--out): each hint names the flag of the command that asked.
        where = "--out DIR to say where to write the set" if not must_exist else "--transcoders DIR"
        raise TranscoderError(
            f"{spec!r} is not a zoo model (`circuits zoo list`) or an existing directory, so it "
            f"would be a hub model, and hub models have no registered transcoder set; check "
            f"the name, or pass {where}"
        )
    path = model_dir / REGISTERED_DIR
    if must_exist and not (path / CONFIG).exists():
        raise TranscoderError(
            f"no transcoder set is registered for {spec} (nothing at {path}); train one with "
            f"`transcoders train --model {spec} --into-model` or pass --transcoders DIR"
        )
    return path


def save_transcoder_set(tset: TranscoderSet, path: Path, *, dtype: str = "float32") -> Path:
    """Write `tset` to the directory `path` atomically; weights stored in `dtype`."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r}")
    tensors = {
        f"layers.{i}.{name}": value.detach().to(STORAGE_DTYPES[dtype]).contiguous()
        for i, transcoder in enumerate(tset)
        for name, value in transcoder.tensors().items()
    }
    config = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "model": tset.model,
        "d_model": tset.d_model,
        "n_layers": tset.n_layers,
        "hooks": [asdict(h) for h in tset.hooks],
        "transcoders": [t.config.to_dict() for t in tset],
        "weights_dtype": dtype,
        "training": tset.training_summary,
    }
    with atomic_dir(path, kind=KIND) as tmp:
        save_file(tensors, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    log.info("transcoder set written to %s", path)
    return path


def load_transcoder_set(
    path: Path, *, bridge: Any = None, model: str | None = None
) -> TranscoderSet:
    """The set saved at `path`, in float32, checked against `bridge` if given.

    `model` (a model id) only warns when it differs from the id the set was trained on: models
    of equal shapes cannot be told apart by their hooks.
    """
    config = _read_config(path)
    try:
        configs = [TranscoderConfig.from_dict(c) for c in config["transcoders"]]
        hooks = [LayerHooks(**h) for h in config["hooks"]]
        tset = TranscoderSet(
            [Transcoder(c) for c in configs],
            model=config["model"],
            hooks=hooks,
            training=config["training"],
        )
    except (TypeError, ValueError) as err:
        raise TranscoderError(f"{path / CONFIG} is malformed: {err}") from err
    if (tset.n_layers, tset.d_model) != (config["n_layers"], config["d_model"]):
        raise TranscoderError(f"{path / CONFIG}: n_layers / d_model disagree with the layers")
    tensors = _read_weights(path / WEIGHTS)
    consumed: set[str] = set()
    for i, transcoder in enumerate(tset):
        prefix = f"layers.{i}."
        mine = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        _load_layer(path, i, transcoder, mine)
        consumed |= {prefix + k for k in mine}
    if extra := sorted(set(tensors) - consumed):
        raise TranscoderError(f"{path / WEIGHTS} has weights of no layer: {extra[:5]}")
    if bridge is not None:
        tset.check_fits(bridge)
    if model is not None and model != tset.model:
        log.warning("transcoder set %s was trained on %s, not on %s", path, tset.model, model)
    return tset.eval()


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors `file`; a missing, truncated or foreign file is refused."""
    try:
        return load_file(str(file))
    except (OSError, SafetensorError) as err:
        raise TranscoderError(
            f"cannot read {file}: {err}; the file is missing or truncated: save or train the "
            "set again"
        ) from err


def _load_layer(
    path: Path, layer: int, transcoder: Transcoder, tensors: dict[str, torch.Tensor]
) -> None:
    """Load one layer's tensors (names without the `layers.<L>.` prefix) into `transcoder`,
    refusing shapes the config does not imply and values that are NaN or inf."""
    file, prefix = path / WEIGHTS, f"layers.{layer}."
    expected = transcoder.tensors()
    for name, value in tensors.items():
        if name in expected and value.shape != expected[name].shape:
            raise TranscoderError(
                f"{file}: tensor {prefix}{name} has shape {tuple(value.shape)} but {path / CONFIG} "
                f"implies {tuple(expected[name].shape)} (d_model {transcoder.config.d_model}, "
                f"d_transcoder {transcoder.config.d_transcoder}); the config and the weights "
                "come from different sets: save them together"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            n_bad = int((~torch.isfinite(value)).sum())
            raise TranscoderError(
                f"{file}: tensor {prefix}{name} holds NaN or inf ({n_bad} of {value.numel()} "
                "values); the set is corrupt: train it again"
            )
    try:
        transcoder.load_tensors(tensors)
    except TranscoderError as err:
        raise TranscoderError(f"{file}: layer {layer}: {err}") from err


def _read_config(path: Path) -> dict[str, Any]:
    file = path / CONFIG
    if not file.exists():
        raise TranscoderError(
            f"no transcoder set at {path} (no {CONFIG}); train one with `transcoders train`"
        )
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TranscoderError(f"{file} is not valid JSON: {err}") from err
    except OSError as err:
        raise TranscoderError(f"cannot read {file}: {err}") from err
    if not isinstance(config, dict) or config.get("kind") != KIND:
        kind = config.get("kind") if isinstance(config, dict) else None
        raise TranscoderError(f"{file} is not a transcoder set (kind {kind!r}, expected {KIND!r})")
    if config.get("schema_version") != SCHEMA_VERSION:
        raise TranscoderError(
            f"{file} has schema_version {config.get('schema_version')!r}; this version of the "
            f"package reads {SCHEMA_VERSION}"
        )
    unknown, missing = set(config) - _CONFIG_KEYS, _CONFIG_KEYS - set(config)
    if unknown or missing:
        raise TranscoderError(
            f"{file}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
        )
    return config
