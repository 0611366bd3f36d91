"""Model specs: one string selects a model everywhere.

- `zoo:<name>` (or `zoo:default`): a model of the project's zoo, trained here;
- a path to a local Hugging Face model directory;
- anything else: a Hugging Face hub name (needs the network and the hub's weights).

Every model is loaded through `TransformerBridge.boot_transformers`, the same path for all three.
"""

import logging
from pathlib import Path

import torch

from circuits.errors import ModelSpecError

log = logging.getLogger(__name__)

ZOO_PREFIX = "zoo:"


def resolve_model_dir(spec: str) -> Path | None:
    """The local directory `spec` names, or None for a hub name."""
    if spec.startswith(ZOO_PREFIX):
        from circuits.zoo.registry import is_trained, zoo_model, zoo_path

        name = zoo_model(spec.removeprefix(ZOO_PREFIX)).name
        if not is_trained(name):
            raise ModelSpecError(
                f"zoo model {name!r} is not trained here; run `circuits zoo train {name}`"
            )
        return zoo_path(name)
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelSpecError(f"{path} is not a Hugging Face model directory (no config.json)")
        return path
    if spec.startswith((".", "/", "~")):
        raise ModelSpecError(f"model directory {spec} does not exist")
    return None


def load_tokenizer(model_dir: Path):
    """The tokenizer saved in `model_dir`, checked to be non-empty.

    transformers silently gives an empty tokenizer for a directory without tokenizer files.
    """
    from transformers import AutoTokenizer

    if not any((model_dir / f).exists() for f in ("tokenizer.json", "vocab.json")):
        raise ModelSpecError(f"{model_dir} has no tokenizer files (tokenizer.json or vocab.json)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if len(tokenizer) < 2:
        raise ModelSpecError(f"the tokenizer in {model_dir} is empty; save one with the model")
    return tokenizer


def load_model(spec: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Boot `spec` as a TransformerBridge; local directories use their own tokenizer."""
    from transformer_lens.model_bridge import TransformerBridge

    model_dir = resolve_model_dir(spec)
    if model_dir is None:
        try:
            return TransformerBridge.boot_transformers(spec, device=device, dtype=dtype)
        except OSError as err:
            raise ModelSpecError(
                f"cannot load {spec!r} from the hub ({err.__class__.__name__}); with no network, "
                "pass a local model directory or a zoo model (`circuits zoo list`)"
            ) from err
    tokenizer = load_tokenizer(model_dir)
    bridge = TransformerBridge.boot_transformers(
        str(model_dir), tokenizer=tokenizer, device=device, dtype=dtype
    )
    if len(tokenizer) > bridge.cfg.d_vocab:
        raise ModelSpecError(
            f"the tokenizer in {model_dir} has {len(tokenizer)} tokens but the model only "
            f"{bridge.cfg.d_vocab}; the tokenizer belongs to another model"
        )
    return bridge
