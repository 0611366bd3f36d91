"""Train a zoo model on CPU: seeded, checkpointed, resumable to the same final weights.

The batch for step s is drawn from a generator seeded with (seed, s) and there is no dropout, so a
run resumed from a checkpoint repeats exactly the steps an uninterrupted run would take.
"""

import copy
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from circuits.corpus.build import load_corpus_tokenizer, load_or_build_corpus
from circuits.corpus.tokenizer import end_of_text_id
from circuits.errors import CheckpointError, CorpusError
from circuits.paths import atomic_dir, cache_dir
from circuits.schedule import learning_rate
from circuits.zoo.card import write_card
from circuits.zoo.registry import ZooModel, ZooTrainConfig
from circuits.zoo.scores import task_scores

log = logging.getLogger(__name__)

ZOO_MODEL_KIND = "zoo_model"
"""The artifact kind of a trained zoo model directory."""
CHECKPOINT = "checkpoint"
LOG = "train_log.jsonl"


def default_work_dir(out: Path) -> Path:
    """Where the checkpoint and log of a run training into `out` live: in the cache, keyed by
    `out`, so that `out` is written whole at the end."""
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / "zoo-training" / f"{out.name}-{key}"


def gpt2_config(spec: ZooModel, vocab_size: int, eot: int) -> GPT2Config:
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=spec.n_ctx,
        n_embd=spec.d_model,
        n_layer=spec.n_layers,
        n_head=spec.n_heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eot,
        eos_token_id=eot,
        tie_word_embeddings=True,
    )


def document_starts(tokens: np.ndarray, eot: int, seq_len: int) -> np.ndarray:
    """Positions right after each end-of-text token from which a whole window fits.

    Position 1 always counts (a window from 0), so a short array holding one long document
    still has a start.
    """
    starts = np.concatenate([[1], np.flatnonzero(np.asarray(tokens) == eot) + 1])
    starts = starts[starts - 1 + seq_len <= len(tokens)]
    if len(starts) == 0:
        raise CorpusError(f"{len(tokens)} tokens cannot fill one window of {seq_len}")
    return starts


def batch_at(
    tokens: np.ndarray, starts: np.ndarray, config: ZooTrainConfig, step: int
) -> torch.Tensor:
    """The training batch of `step`: windows opening at document starts, a function of
    (seed, step) only. Aligned windows put each task prompt at the positions it has at
    evaluation time, which speeds up learning the tasks."""
    rng = np.random.default_rng([config.seed, step])
    chosen = starts[rng.integers(0, len(starts), size=config.batch_size)]
    windows = np.stack([tokens[s - 1 : s - 1 + config.seq_len] for s in chosen]).astype(np.int64)
    return torch.from_numpy(windows)  # each row opens with the end-of-text token


def init_position_embeddings(model: GPT2LMHeadModel) -> None:
    """Start the learnt position embeddings from sinusoids at the scale of token embeddings.

    The architecture is unchanged; with random starts, heads that attend to the previous token
    (the first step of induction and IOI) form thousands of steps later on this corpus.
    """
    wpe = model.transformer.wpe.weight
    n_pos, d_model = wpe.shape
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    freq = 10_000 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(n_pos, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    with torch.no_grad():
        wpe.copy_(table * model.config.initializer_range * 2**0.5)


def lr_at(config: ZooTrainConfig, step: int) -> float:
    """Linear warm-up, constant, then linear decay to a tenth over the last decay_fraction."""
    return learning_rate(step, config, floor=0.1)


def make_optimizer(model: GPT2LMHeadModel, config: ZooTrainConfig) -> torch.optim.AdamW:
    decayed = [p for n, p in model.named_parameters() if p.ndim == 2 and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "wpe" not in n)]
    groups = [
        {"params": decayed, "weight_decay": config.weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95))


def save_checkpoint(
    path: Path,
    model: GPT2LMHeadModel,
    opt: torch.optim.AdamW,
    step: int,
    ema: GPT2LMHeadModel | None = None,
) -> None:
    """Weights (and their moving average), optimizer moments as safetensors (no pickles),
    written atomically."""
    tensors = _weights("model", model) | (_weights("ema", ema) if ema is not None else {})
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"opt.{i}.{key}"] = torch.as_tensor(value).contiguous()
    with atomic_dir(path, kind="zoo_checkpoint") as tmp:
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "step.json").write_text(json.dumps({"step": step}))


def _weights(prefix: str, model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    tensors = {f"{prefix}.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.pop(f"{prefix}.lm_head.weight", None)  # tied to the token embedding
    return tensors


def load_checkpoint(
    path: Path,
    model: GPT2LMHeadModel,
    opt: torch.optim.AdamW,
    ema: GPT2LMHeadModel | None = None,
) -> int:
    """Restore weights (and their moving average) and optimizer state; return the step to
    continue from."""
    try:
        tensors = load_file(str(path / "state.safetensors"))
        step = json.loads((path / "step.json").read_text())["step"]
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {err}; delete it to start over"
        ) from err
    mismatch = f"checkpoint {path} was written by another configuration; delete it to start over"
    if (ema is not None) != any(k.startswith("ema.") for k in tensors):
        raise CheckpointError(f"{mismatch} (with and without a moving average of the weights)")
    for prefix, target in (("model.", model), ("ema.", ema)):
        if target is None:
            continue
        weights = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            missing, unexpected = target.load_state_dict(weights, strict=False)
        except RuntimeError as err:  # shapes differ
            raise CheckpointError(mismatch) from err
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise CheckpointError(f"{mismatch} (missing {missing}, unexpected {unexpected})")
    state = opt.state_dict()
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            state["state"].setdefault(int(i), {})[name] = value
    opt.load_state_dict(state)
    return step


def hf_logits_fn(model: GPT2LMHeadModel) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda ids: model(ids).logits


def evaluate(
    model: GPT2LMHeadModel, tokenizer, val: np.ndarray, config: ZooTrainConfig, n_prompts: int = 100
) -> dict:
    val_starts = document_starts(val, end_of_text_id(tokenizer), config.seq_len)
    """Validation loss on fixed windows of held-out text, and the task scores."""
    model.eval()
    with torch.no_grad():
        losses = []
        for i in range(8):
            ids = batch_at(
                val, val_starts, ZooTrainConfig(seed=10_000 + i, seq_len=config.seq_len), 0
            )
            losses.append(model(ids, labels=ids).loss.item())
        scores = task_scores(hf_logits_fn(model), tokenizer, n_prompts=n_prompts)
    model.train()
    return {"val_loss": float(np.mean(losses)), **scores}


def train(
    spec: ZooModel,
    out: Path,
    *,
    work: Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> Path | None:
    """Train `spec` into `out`, resuming from the checkpoint in `work` if there is one.

    `work` (default: a directory in the cache, keyed by `out`) holds the checkpoint and the
    training log while training runs; the log is copied into `out` at the end. `stop_after`
    ends the run after that step (as an interruption would), leaving a checkpoint; returns None
    then, else the model directory.
    """
    work = work or default_work_dir(out)
    config = spec.train
    corpus = load_or_build_corpus(spec.corpus)
    tokenizer = load_corpus_tokenizer(corpus)
    tokens = np.load(corpus / "train.npy", mmap_mode="r")
    val = np.load(corpus / "val.npy")
    eot = end_of_text_id(tokenizer)
    starts = document_starts(tokens, eot, config.seq_len)
    torch.manual_seed(config.seed)
    model = GPT2LMHeadModel(gpt2_config(spec, len(tokenizer), eot))
    init_position_embeddings(model)
    opt = make_optimizer(model, config)
    ema = copy.deepcopy(model) if config.ema_decay else None
    ckpt = work / CHECKPOINT
    step = load_checkpoint(ckpt, model, opt, ema) if (ckpt / "step.json").exists() else 0
    if step:
        log.info("resuming %s from step %d", spec.name, step)
    log_path = work / LOG
    work.mkdir(parents=True, exist_ok=True)
    wall = _previous_wall_time(log_path, step)
    start = time.perf_counter() - wall
    loss_ema = math.nan
    model.train()
    bar = tqdm(
        range(step, config.n_steps),
        initial=step,
        total=config.n_steps,
        desc=f"train {spec.name}",
        disable=not progress,
    )
    for step in bar:
        loss = _optimizer_step(model, opt, batch_at(tokens, starts, config, step), config, step)
        if ema is not None:
            _update_average(ema, model, config.ema_decay)
        loss_ema = loss if math.isnan(loss_ema) else 0.98 * loss_ema + 0.02 * loss
        done = step + 1
        if done % config.eval_every == 0 or done == config.n_steps:
            record = {
                "step": done,
                "tokens": done * config.batch_size * config.seq_len,
                "wall_s": time.perf_counter() - start,
                "train_loss": loss_ema,
                **evaluate(model if ema is None else ema, tokenizer, val, config),
            }
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(
                loss=f"{loss_ema:.3f}",
                ioi=f"{record['ioi.logit_diff']:.2f}",
                gt=f"{record['greater_than.prob_diff']:.2f}",
            )
        if done % config.checkpoint_every == 0 and done < config.n_steps:
            save_checkpoint(ckpt, model, opt, done, ema)
        if stop_after is not None and done >= stop_after and done < config.n_steps:
            save_checkpoint(ckpt, model, opt, done, ema)
            return None
    kept = model if ema is None else ema
    final = evaluate(kept, tokenizer, val, config, n_prompts=200)
    with atomic_dir(out, kind=ZOO_MODEL_KIND) as tmp:
        wall = time.perf_counter() - start
        _save_model(spec, tmp, kept, tokenizer, corpus, wall, loss_ema, final)
        shutil.copyfile(log_path, tmp / LOG)
    log_path.unlink()
    shutil.rmtree(ckpt, ignore_errors=True)
    return out


def _optimizer_step(
    model: GPT2LMHeadModel,
    opt: torch.optim.AdamW,
    ids: torch.Tensor,
    config: ZooTrainConfig,
    step: int,
) -> float:
    """One AdamW step at the scheduled learning rate, gradients clipped to norm 1; the loss."""
    for group in opt.param_groups:
        group["lr"] = lr_at(config, step)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
        loss = model(ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


@torch.no_grad()
def _update_average(ema: GPT2LMHeadModel, model: GPT2LMHeadModel, decay: float) -> None:
    for averaged, current in zip(ema.parameters(), model.parameters(), strict=True):
        averaged.lerp_(current, 1 - decay)


def _previous_wall_time(log_path: Path, step: int) -> float:
    """Wall time already spent before `step`, read from the training log (for the card)."""
    if not step or not log_path.exists():
        return 0.0
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    earlier = [r["wall_s"] for r in records if r["step"] <= step]
    return earlier[-1] if earlier else 0.0


def _save_model(
    spec: ZooModel,
    out: Path,
    model: GPT2LMHeadModel,
    tokenizer: PreTrainedTokenizerFast,
    corpus: Path,
    wall_s: float,
    train_loss: float,
    final: dict[str, float],
) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    card = {
        "name": spec.name,
        "architecture": "GPT2LMHeadModel",
        "config": asdict(spec),
        "n_params": sum(p.numel() for p in model.parameters()),
        "tokens_seen": spec.train.n_steps * spec.train.batch_size * spec.train.seq_len,
        "wall_time_s": wall_s,
        "train_loss": train_loss,
        "val_loss": final.pop("val_loss"),
        "scores": final,
        "corpus": json.loads((corpus / "corpus.json").read_text()),
    }
    write_card(out, card)
