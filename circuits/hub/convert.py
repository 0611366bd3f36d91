"""Write a real model as an ordinary Hugging Face directory in the cache: float32 safetensors,
its tokenizer, and a card (`card.json`, `card.md`) naming where the weights came from.

From a GGUF file, transformers dequantizes every tensor to dense float32 on load; the directory
then loads without the `gguf` package. From a hub name (users with the network) the model is
saved as the hub has it.
"""

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from circuits.errors import ModelSpecError
from circuits.hub.fetch import sha256_file
from circuits.hub.registry import REAL_MODEL_KIND, added_path
from circuits.paths import atomic_dir, file_mode

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_CAUSE = 300
"""Characters of a library's error quoted in a one-line error."""


def convert_gguf(
    gguf: Path, name: str, *, bos_token: str | None = None, source: dict[str, Any] | None = None
) -> Path:
    """Dequantize the GGUF file `gguf` into the added model `name`; returns its directory.

    `bos_token` becomes the tokenizer's BOS (None: the GGUF's own); `source` goes into the card
    (packages, licence, note).
    """
    gguf = Path(gguf).expanduser()
    if not gguf.is_file():
        raise ModelSpecError(f"GGUF file {gguf} does not exist")
    out = added_path(name)
    log.info("%s: dequantizing %s", name, gguf)
    tokenizer, model = _load_gguf(gguf)
    _drop_quantization(model)
    card = {
        **(source or {}),
        "gguf": {"file": gguf.name, "sha256": sha256_file(gguf), "bytes": gguf.stat().st_size},
    }
    return write_model(out, name, model, tokenizer, bos_token=bos_token, card=card)


def convert_hub(hub_name: str, name: str) -> Path:
    """Save the hub model `hub_name` (needs the network) as the added model `name`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = added_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(hub_name)
        model = AutoModelForCausalLM.from_pretrained(hub_name, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise ModelSpecError(
            f"cannot load {hub_name!r} from the Hugging Face hub ({_cause(err)}); without the "
            "network, pass a local .gguf file with --gguf FILE or add a known model "
            "(`circuits models list`)"
        ) from err
    return write_model(out, name, model, tokenizer, bos_token=None, card={"hub_name": hub_name})


def write_model(
    out: Path, name: str, model: Any, tokenizer: Any, *, bos_token: str | None, card: dict
) -> Path:
    """Save `model` and `tokenizer` with a card into `out`, whole or not at all."""
    import transformers

    if bos_token is not None:
        if bos_token not in tokenizer.get_vocab():
            raise ModelSpecError(f"{name}: the tokenizer has no token {bos_token!r} for BOS")
        tokenizer.bos_token = bos_token
        model.config.bos_token_id = tokenizer.bos_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.bos_token_id = tokenizer.bos_token_id
    config = model.config
    card = {
        "schema_version": SCHEMA_VERSION,
        "kind": REAL_MODEL_KIND,
        "name": name,
        **card,
        "bos_token": tokenizer.bos_token,
        "architecture": config.architectures[0] if config.architectures else type(model).__name__,
        "n_layers": config.num_hidden_layers,
        "d_model": config.hidden_size,
        "d_vocab": config.vocab_size,
        "n_params": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        "transformers": transformers.__version__,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with atomic_dir(out, kind=REAL_MODEL_KIND, what="model directory") as tmp:
        model.to(torch.float32).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "card.md").write_text(render_card(card))
        (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        for path in tmp.iterdir():
            path.chmod(file_mode())  # safetensors writes its file private (0600)
    log.info("%s: written to %s (use it as --model zoo:%s)", name, out, name)
    return out


def read_card(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "card.json").read_text())


def render_card(card: dict[str, Any]) -> str:
    lines = [
        f"# Real model `{card['name']}`",
        "",
        f"{card.get('title', card['architecture'])}: {card['n_layers']} layers, d_model "
        f"{card['d_model']}, vocabulary {card['d_vocab']:,}, {card['n_params']:,} parameters, "
        f"float32. Prompts start with {card['bos_token']!r}.",
        "",
    ]
    for package in card.get("packages", []):
        lines.append(f"- package `{package['name']}` {package['version']}")
    if "gguf" in card:
        gguf = card["gguf"]
        lines.append(f"- GGUF `{gguf['file']}`, {gguf['bytes']:,} bytes, sha256 {gguf['sha256']}")
    if "hub_name" in card:
        lines.append(f"- upstream: `{card['hub_name']}`")
    if "licence" in card:
        lines.append(f"- licence: {card['licence']}")
    lines.append(f"- converted with transformers {card['transformers']} on {card['written']}")
    if card.get("note"):
        lines += ["", card["note"]]
    return "\n".join(lines) + "\n"


def _load_gguf(gguf: Path) -> tuple[Any, Any]:
    """Tokenizer and float32 model from `gguf`, read by transformers with the `gguf` package."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _  # noqa: F401  (transformers needs it; say so before it does)
    except ImportError as err:
        raise ModelSpecError(
            "reading GGUF files needs the `gguf` package: pip install gguf"
        ) from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as err:  # the gguf reader raises bare ValueError, KeyError, IndexError...
        raise ModelSpecError(f"cannot read the GGUF file {gguf}: {_cause(err)}") from err
    return tokenizer, model.eval()


def _drop_quantization(model: Any) -> None:
    """Forget that `model` came from GGUF (its weights are dense float32 by now), so that
    transformers saves it."""
    for _, tensor in model.state_dict().items():
        assert tensor.dtype == torch.float32 or not tensor.is_floating_point(), tensor.dtype
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _cause(err: BaseException) -> str:
    text = " ".join(str(err).split()) or err.__class__.__name__
    return text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 3] + "..."
