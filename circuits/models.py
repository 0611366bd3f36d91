"""Model specs: one string selects a model everywhere.

- `zoo:<name>` (or `zoo:default`): a model of the project's zoo, trained here, or a real
  pretrained model added to the cache (`circuits models add smollm2-135m`);
- a path to a local Hugging Face model directory;
- anything else: a Hugging Face hub name (needs the network and the hub's weights).

Every model is loaded through `TransformerBridge.boot_transformers`, the same path for all three.
Local directories load their Hugging Face model first (`load_hf_model`), so that weights which do
not fill the config, or hold NaN or inf, are refused instead of initialised at random or run.
"""

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from circuits.errors import ModelSpecError

log = logging.getLogger(__name__)

ZOO_PREFIX = "zoo:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""Unsharded weight files of a Hugging Face model directory, in the order transformers reads."""
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
"""Indexes of sharded weights: tensor name -> shard file."""
N_NAMED = 3
"""Tensor names an error message lists before saying how many more there are."""
MAX_CAUSE = 300
"""Characters of a transformers error quoted in a one-line error."""


def resolve_model_dir(spec: str) -> Path | None:
    """The local directory `spec` names, or None for a hub name."""
    if spec.startswith(ZOO_PREFIX):
        from circuits.hub.registry import resolve_added
        from circuits.zoo.registry import is_trained, zoo_model, zoo_path

        if (added := resolve_added(spec.removeprefix(ZOO_PREFIX))) is not None:
            return added  # a real model added with `circuits models add`
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
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as err:
        lines = str(err).strip().splitlines() or [err.__class__.__name__]
        raise ModelSpecError(f"cannot load the tokenizer in {model_dir}: {lines[0]}") from err
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
    hf_model = load_hf_model(model_dir, device=device, dtype=dtype)
    bridge = TransformerBridge.boot_transformers(
        str(model_dir), hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
    )
    if len(tokenizer) > bridge.cfg.d_vocab:
        raise ModelSpecError(
            f"the tokenizer in {model_dir} has {len(tokenizer)} tokens but the model only "
            f"{bridge.cfg.d_vocab}; the tokenizer belongs to another model"
        )
    return bridge


def load_hf_model(model_dir: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """The Hugging Face causal LM saved in `model_dir`, loaded as `boot_transformers` would load
    it (eager attention, `dtype`, on `device`), with weights that fill its config exactly and
    are finite.

    transformers initialises tensors the weights lack, or have in another shape, at random and
    only logs it; here that, weights the config has no place for, and NaN or inf are refused.
    """
    from safetensors import SafetensorError
    from transformer_lens.utilities.multi_gpu import maybe_cast_floating_params
    from transformers import AutoModelForCausalLM

    report = _HeldLoadReport()
    try:
        with report.held():
            loaded: Any = AutoModelForCausalLM.from_pretrained(  # (model, info) with the flag
                model_dir,
                dtype=dtype,
                attn_implementation="eager",  # the bridge's attention hooks need eager
                output_attentions=True,
                ignore_mismatched_sizes=True,  # report mismatched shapes below, not raise
                output_loading_info=True,
            )
        hf_model, info = loaded
        check_loading_info(model_dir, info)
    except ModelSpecError:
        report.log()
        raise
    except (OSError, RuntimeError, ValueError, SafetensorError) as err:
        report.log()
        text = " ".join(str(err).split()) or err.__class__.__name__
        text = text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 3] + "..."
        raise ModelSpecError(f"cannot load the model in {model_dir}: {text}") from err
    check_finite(model_dir, hf_model.state_dict())
    hf_model = hf_model.to(device)
    maybe_cast_floating_params(hf_model, dtype)
    return hf_model.eval()


def check_loading_info(model_dir: Path, info: dict[str, Any]) -> None:
    """Refuse a load whose `output_loading_info` lists missing, unexpected or misshapen tensors
    (tied weights, such as GPT-2's `lm_head.weight`, are not listed as missing)."""
    problems = []
    if missing := sorted(info.get("missing_keys", ())):
        problems.append(f"missing from the weights: {_some(missing)}")
    if unexpected := sorted(info.get("unexpected_keys", ())):
        problems.append(f"in the weights but not in the config: {_some(unexpected)}")
    if mismatched := sorted(info.get("mismatched_keys", ())):
        shapes = [
            f"{name}: {tuple(saved)} in the weights, {tuple(wanted)} by the config"
            for name, saved, wanted in mismatched
        ]
        problems.append(f"of another shape: {_some(shapes)}")
    if problems:
        raise ModelSpecError(
            f"{model_dir}: the weights do not match config.json ({'; '.join(problems)}); save "
            "the model and its config.json together (save_pretrained), or fix config.json"
        )


def check_finite(model_dir: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or inf, naming the file and the first such tensor."""
    seen: set[int] = set()
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() or tensor.data_ptr() in seen:
            continue  # integer buffers cannot be NaN; tied tensors are checked once
        seen.add(tensor.data_ptr())
        if not torch.isfinite(tensor).all():
            n_bad = int((~torch.isfinite(tensor)).sum())
            raise ModelSpecError(
                f"{weights_file(model_dir, name)}: tensor {name} holds NaN or inf ({n_bad} of "
                f"{tensor.numel()} values); the weights are corrupt: retrain or re-download them"
            )


def weights_file(model_dir: Path, tensor: str) -> Path:
    """The file of `model_dir` that holds `tensor`: its shard for sharded weights, else the one
    weights file; the directory where neither is known."""
    for index in WEIGHT_INDEXES:
        if (model_dir / index).exists():
            try:
                weight_map = json.loads((model_dir / index).read_text())["weight_map"]
            except (OSError, ValueError, KeyError, TypeError):
                return model_dir / index
            shard = weight_map.get(tensor) if isinstance(weight_map, dict) else None
            return model_dir / shard if isinstance(shard, str) else model_dir / index
    for name in WEIGHT_FILES:
        if (model_dir / name).exists():
            return model_dir / name
    return model_dir


def _some(names: Sequence[str]) -> str:
    more = f" and {len(names) - N_NAMED} more" if len(names) > N_NAMED else ""
    return ", ".join(names[:N_NAMED]) + more


class _HeldLoadReport(logging.Filter):
    """Holds back transformers' multi-line load report, which `check_loading_info` says in one
    line; `log` passes it on at debug level (shown with `--debug`)."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        self.reports.append(message)
        return False

    @contextmanager
    def held(self) -> Iterator[None]:
        logger = logging.getLogger("transformers.modeling_utils")
        logger.addFilter(self)
        try:
            yield
        finally:
            logger.removeFilter(self)

    def log(self) -> None:
        for report in self.reports:
            log.debug("%s", report)
