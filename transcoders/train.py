"""Train one transcoder per MLP layer in a single pass: every harvested batch feeds all layers.

The loss of a layer is its normalised reconstruction error (squared error over the variance of
the MLP output, i.e. the fraction of variance unexplained), plus its kind's sparsity penalty,
plus the AuxK loss of Gao et al. (2024): the dead features (not active for `dead_after_tokens`
tokens) with the largest pre-activations try to reconstruct the remaining error, which brings
them back to life. Adam, linear warm-up, then decay over the last `decay_fraction` of steps.

Checkpoints (safetensors: weights, optimizer moments, dead-feature counters; JSON: step, wall
time, configs) let an interrupted run resume; the activation stream is a function of the batch
number (see `harvest`), so a resumed run ends with exactly the weights of an uninterrupted one.
"""

import copy
import hashlib
import itertools
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm import tqdm

from circuits.errors import CheckpointError
from circuits.paths import atomic_dir, cache_dir
from circuits.schedule import learning_rate
from circuits.zoo.train import document_starts
from transcoders.config import TrainConfig, TranscoderConfig
from transcoders.harvest import Activations, activation_batches, canonical_mlp_hooks
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet, save_transcoder_set

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"


def lr_at(config: TrainConfig, step: int) -> float:
    """Linear warm-up, constant, then linear or cosine decay to zero over decay_fraction."""
    return learning_rate(step, config, shape=config.schedule)


def default_work_dir(out: Path) -> Path:
    """Where the checkpoint of a run writing to `out` lives: in the cache, outside `out` (which
    is replaced atomically at the end) and outside the work tree."""
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / "transcoder-training" / f"{out.name}-{key}"


@dataclass(kw_only=True)
class TrainState:
    """Everything a step changes: the set, the optimizer, and the per-feature counters."""

    tset: TranscoderSet
    opt: torch.optim.Adam
    idle_tokens: Tensor
    """[n_layers, d_transcoder] int64: tokens since each feature was last active."""
    in_scale: Tensor
    """[n_layers]: factor that brings each layer's MLP input to mean squared norm d_model."""
    out_scale: Tensor
    """[n_layers]: the same for the MLP output; training runs on the rescaled activations."""
    variance: Tensor
    """[n_layers]: total variance of each layer's rescaled MLP output (the loss normaliser)."""
    step: int = 0
    wall_s: float = 0.0


class LayerForward(NamedTuple):
    """What the loss of one layer needs from the transcoder's forward pass on a batch."""

    recon: Float[Tensor, "batch d_model"]
    pre: Float[Tensor, "batch d_transcoder"]
    """Pre-activations, detached: they only choose features (AuxK recomputes its own)."""
    active: Tensor
    """[batch, d_transcoder] bool, or [batch, k] bool when `indices` is given."""
    indices: Tensor | None
    """[batch, k] features kept per token on the sparse path, else None."""
    penalty: Tensor


def dense_forward(transcoder: Transcoder, x: Float[Tensor, "batch d_model"]) -> LayerForward:
    pre, features = transcoder.encode(x)
    penalty = transcoder.activation.penalty(pre, features, transcoder.decoder_norms())
    recon = transcoder.decode(features) + transcoder.skip_path(x)
    return LayerForward(
        recon=recon, pre=pre.detach(), active=features > 0, indices=None, penalty=penalty
    )


def sparse_forward(
    transcoder: Transcoder, x: Float[Tensor, "batch d_model"]
) -> LayerForward | None:
    """For kinds with a fixed number of features per token: the same function as
    `dense_forward` (and the same gradients), from the kept features only. None otherwise."""
    with torch.no_grad():
        pre = torch.addmm(transcoder.b_enc, x, transcoder.W_enc)
    indices = transcoder.activation.train_indices(pre)
    if indices is None:
        return None
    values = transcoder.pre_at(x, indices, pre).relu()
    recon = transcoder.decode_sparse(indices, values) + transcoder.skip_path(x)
    return LayerForward(
        recon=recon, pre=pre, active=values > 0, indices=indices, penalty=x.new_zeros(())
    )


def auxk_loss(
    transcoder: Transcoder,
    x: Float[Tensor, "batch d_model"],
    pre: Float[Tensor, "batch d_transcoder"],
    error: Float[Tensor, "batch d_model"],
    dead: Tensor,
    k_aux: int,
) -> Float[Tensor, ""]:
    """Squared error of the top-`k_aux` dead features (chosen by `pre`) reconstructing
    `error` (detached), scaled down when fewer than k_aux features are dead."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return x.new_zeros(())
    k = min(k_aux, n_dead)
    indices = torch.where(dead, pre, -torch.inf).topk(k, dim=-1).indices
    values = transcoder.pre_at(x, indices, pre).relu()
    recon = transcoder.decode_sparse(indices, values) - transcoder.b_dec
    return (recon - error.detach()).pow(2).sum(-1).mean() * min(n_dead / k_aux, 1.0)


def layer_loss(
    state: TrainState, layer: int, acts: Activations, config: TrainConfig
) -> tuple[Tensor, dict[str, float]]:
    """The training loss of one layer's transcoder on a batch, and its logged parts."""
    transcoder = state.tset[layer]
    x = acts.mlp_in[:, layer] * state.in_scale[layer]
    y = acts.mlp_out[:, layer] * state.out_scale[layer]
    out = sparse_forward(transcoder, x) or dense_forward(transcoder, x)
    error = y - out.recon
    fvu = error.pow(2).sum(-1).mean() / state.variance[layer]
    idle = state.idle_tokens[layer]
    idle.add_(len(x))
    if out.indices is None:
        idle.masked_fill_(out.active.any(0), 0)
    else:
        idle[out.indices[out.active]] = 0
    loss = fvu + out.penalty
    aux = 0.0
    dead = idle >= config.dead_after_tokens
    if config.auxk_alpha > 0:
        k_aux = config.k_aux or max(1, transcoder.config.d_model // 2)
        aux_term = auxk_loss(transcoder, x, out.pre, error, dead, k_aux) / state.variance[layer]
        loss = loss + config.auxk_alpha * aux_term
        aux = aux_term.item()
    stats = {
        "fvu": fvu.item(),
        "l0": out.active.sum().item() / len(x),
        "aux": aux,
        "dead": dead.float().mean().item(),
    }
    return loss, stats


def train_step(state: TrainState, acts: Activations, config: TrainConfig) -> list[dict]:
    """One Adam step on all layers at the scheduled learning rate; per-layer stats."""
    for group in state.opt.param_groups:
        group["lr"] = lr_at(config, state.step)
    losses, stats = zip(
        *(layer_loss(state, i, acts, config) for i in range(state.tset.n_layers)), strict=True
    )
    torch.stack(list(losses)).sum().backward()
    for transcoder in state.tset:
        transcoder.before_step()
    state.opt.step()
    state.opt.zero_grad(set_to_none=True)
    for transcoder in state.tset:
        transcoder.after_step()
    state.step += 1
    if state.step in {int(f * config.n_steps) for f in config.resample_at}:
        resample_dead(state, acts, config)
    return list(stats)


@torch.no_grad()
def resample_dead(state: TrainState, acts: Activations, config: TrainConfig) -> list[int]:
    """Re-initialise each layer's dead features on tokens of `acts` drawn by squared error: the
    encoder column points along the token's input (at the mean norm of live columns), the
    decoder row along its error, the bias is 0, Adam's moments and the idle counter restart.
    Deterministic in (seed, step). Returns the number resampled per layer."""
    counts = []
    for layer, transcoder in enumerate(state.tset):
        dead = (state.idle_tokens[layer] >= config.dead_after_tokens).nonzero().squeeze(1)
        counts.append(len(dead))
        if len(dead) == 0 or len(dead) == transcoder.config.d_transcoder:
            continue
        x = acts.mlp_in[:, layer] * state.in_scale[layer]
        y = acts.mlp_out[:, layer] * state.out_scale[layer]
        error = y - transcoder(x)
        weight = error.pow(2).sum(-1)
        generator = torch.Generator().manual_seed(
            config.seed * 1_000_003 + state.step * 101 + layer
        )
        rows = torch.multinomial(weight + 1e-12, len(dead), replacement=True, generator=generator)
        live = torch.ones(transcoder.config.d_transcoder, dtype=torch.bool)
        live[dead] = False
        norm = transcoder.W_enc[:, live].norm(dim=0).mean()
        inputs = x[rows] / x[rows].norm(dim=-1, keepdim=True).clamp(min=1e-8)
        errors = error[rows]
        transcoder.W_enc[:, dead] = (inputs * norm).T
        transcoder.b_enc[dead] = 0.0
        transcoder.W_dec[dead] = errors / errors.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        for param, index in (
            (transcoder.W_enc, (slice(None), dead)),
            (transcoder.b_enc, dead),
            (transcoder.W_dec, dead),
        ):
            _reset_moments(state.opt, param, index)
        state.idle_tokens[layer, dead] = 0
    log.info("step %d: resampled dead features per layer: %s", state.step, counts)
    return counts


def _reset_moments(opt: torch.optim.Adam, param: Tensor, index: Any) -> None:
    for moment in ("exp_avg", "exp_avg_sq"):
        if moment in opt.state.get(param, {}):
            opt.state[param][moment][index] = 0.0


def init_state(bridge: Any, transcoder: TranscoderConfig, *, model: str, seed: int) -> TrainState:
    """A fresh set for every MLP layer of `bridge`, seeded; see `fit_to_batch`."""
    torch.manual_seed(seed)
    n_layers = bridge.cfg.n_layers
    tset = TranscoderSet(
        [Transcoder(transcoder) for _ in range(n_layers)],
        model=model,
        hooks=canonical_mlp_hooks(bridge),
    )
    tset.train()
    return TrainState(
        tset=tset,
        opt=torch.optim.Adam(tset.parameters(), lr=0.0),
        idle_tokens=torch.zeros(n_layers, transcoder.d_transcoder, dtype=torch.int64),
        in_scale=torch.ones(n_layers),
        out_scale=torch.ones(n_layers),
        variance=torch.ones(n_layers),
    )


def fit_to_batch(state: TrainState, first: Activations, *, centered: bool = True) -> None:
    """Fit a fresh state to the first batch: scales that bring each layer's MLP input and output
    to mean squared norm d_model (so hyperparameters such as thresholds, penalties and the
    learning rate carry over between models and layers), decoder biases at the mean rescaled
    output, the loss normalisers at its variance, and (with `centered`) encoder biases that
    centre the pre-activations (see `TrainConfig.centered_init`)."""
    d_model = first.mlp_in.shape[-1]
    state.in_scale = _unit_scale(d_model, first.mlp_in.pow(2).sum(-1).mean(0))
    state.out_scale = _unit_scale(d_model, first.mlp_out.pow(2).sum(-1).mean(0))
    x_mean = (first.mlp_in * state.in_scale[:, None]).mean(0)  # [n_layers, d_model]
    y = first.mlp_out * state.out_scale[:, None]
    mean = y.mean(0)  # [n_layers, d_model]
    constant = (first.mlp_out == first.mlp_out[:1]).flatten(2).all(-1).all(0)  # [n_layers]
    variance = (y - mean).pow(2).sum(-1).mean(0)
    state.variance = torch.where(constant, torch.ones_like(variance), variance)
    with torch.no_grad():
        for i, transcoder in enumerate(state.tset):
            transcoder.b_dec.copy_(mean[i])
            if centered:
                transcoder.b_enc.copy_(-x_mean[i] @ transcoder.W_enc)
            if constant[i]:
                _make_inert(transcoder)


def _make_inert(transcoder: Transcoder) -> None:
    """An MLP whose output never varies (a compiled model's empty MLP) is its constant, `b_dec`,
    with no feature ever active: trained features would only cancel one another, and the graph
    would show them. Nothing moves these weights afterwards (every gradient is zero)."""
    transcoder.W_enc.zero_()
    transcoder.b_enc.fill_(-1.0)
    if transcoder.W_skip is not None:
        transcoder.W_skip.zero_()


def _unit_scale(d_model: int, mean_square: Tensor) -> Tensor:
    """sqrt(d_model / mean_square), and 1 where the activations are all zero."""
    safe = torch.where(mean_square > 0, mean_square, torch.full_like(mean_square, d_model))
    return (d_model / safe).sqrt()


def fold_scales(state: TrainState) -> TranscoderSet:
    """A copy of the set that reads and writes the model's own activations: the input and
    output scales folded into the weights (features and thresholds unchanged; decoder rows then
    have norm 1 / out_scale)."""
    tset = copy.deepcopy(state.tset)
    with torch.no_grad():
        for transcoder, s_in, s_out in zip(tset, state.in_scale, state.out_scale, strict=True):
            transcoder.W_enc.mul_(s_in)
            transcoder.W_dec.div_(s_out)
            transcoder.b_dec.div_(s_out)
            if transcoder.W_skip is not None:
                transcoder.W_skip.mul_(s_in / s_out)
    return tset.eval()


def run_key(transcoder: TranscoderConfig, config: TrainConfig, model: str) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed."""
    key = {"model": model, "transcoder": asdict(transcoder), "train": asdict(config)}
    return json.loads(json.dumps(key))  # as the checkpoint stores it (tuples become lists)


def save_checkpoint(path: Path, state: TrainState, key: dict[str, Any]) -> None:
    """Weights, optimizer moments and counters as safetensors (no pickles), atomically."""
    tensors = {f"set.{k}": v.contiguous() for k, v in state.tset.state_dict().items()}
    for i, param_state in state.opt.state_dict()["state"].items():
        for name, value in param_state.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(value).contiguous()
    tensors["idle_tokens"] = state.idle_tokens
    tensors["in_scale"] = state.in_scale
    tensors["out_scale"] = state.out_scale
    tensors["variance"] = state.variance
    meta = {"step": state.step, "wall_s": state.wall_s, "run": key}
    with atomic_dir(path, kind="transcoder_checkpoint") as tmp:
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta, indent=2))


def load_checkpoint(path: Path, state: TrainState, key: dict[str, Any]) -> None:
    """Restore `state` from `path`; refuse a checkpoint of another run."""
    try:
        meta = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "state.safetensors"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}; use --fresh") from err
    if meta.get("run") != key:
        raise CheckpointError(
            f"checkpoint {path} belongs to another run (model or configuration differ); "
            "use --fresh to discard it"
        )
    weights = {k.removeprefix("set."): v for k, v in tensors.items() if k.startswith("set.")}
    state.tset.load_state_dict(weights, strict=True)
    opt_state = state.opt.state_dict()
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, i, field_name = name.split(".", 2)
            opt_state["state"].setdefault(int(i), {})[field_name] = value
    state.opt.load_state_dict(opt_state)
    state.idle_tokens.copy_(tensors["idle_tokens"])
    state.in_scale = tensors["in_scale"]
    state.out_scale = tensors["out_scale"]
    state.variance = tensors["variance"]
    state.step, state.wall_s = meta["step"], meta["wall_s"]


def train_transcoders(
    bridge: Any,
    tokens: np.ndarray,
    transcoder: TranscoderConfig,
    config: TrainConfig,
    *,
    out: Path,
    model: str,
    eot: int,
    val_tokens: np.ndarray | None = None,
    work: Path | None = None,
    weights_dtype: str = "float32",
    stop_after: int | None = None,
    progress: bool = True,
) -> Path | None:
    """Train a set for every MLP layer of `bridge` on `tokens` and save it to `out`.

    Resumes from the checkpoint in `work` (default: `default_work_dir(out)`) if there is one.
    `stop_after` ends the run after that step, as an interruption would, leaving a checkpoint;
    returns None then, else `out`. With `val_tokens`, the summary in `out/config.json` holds
    the final FVU, L0 and dead fractions on held-out text.
    """
    if transcoder.d_model != bridge.cfg.d_model:
        raise ValueError(f"d_model {transcoder.d_model} != the model's {bridge.cfg.d_model}")
    ckpt = (work or default_work_dir(out)) / CHECKPOINT
    key = run_key(transcoder, config, model)
    state = init_state(bridge, transcoder, model=model, seed=config.seed)
    if (ckpt / "state.json").exists():
        load_checkpoint(ckpt, state, key)
        log.info("resuming from step %d of %d (%s)", state.step, config.n_steps, ckpt)
    batches = activation_batches(
        bridge, tokens, config.harvest, batch_size=config.batch_size, eot=eot, start=state.step
    )
    if state.step == 0:
        first = next(batches)
        fit_to_batch(state, first, centered=config.centered_init)
        batches = itertools.chain([first], batches)
    stopped = _run_steps(state, batches, config, ckpt, key, stop_after, progress)
    if stopped:
        return None
    tset = fold_scales(state)
    tset.training_summary = _summary(tset, state.wall_s, config, bridge, val_tokens, eot)
    save_transcoder_set(tset, out, dtype=weights_dtype)
    shutil.rmtree(ckpt, ignore_errors=True)
    return out


def _run_steps(
    state: TrainState,
    batches: Iterator[Activations],
    config: TrainConfig,
    ckpt: Path,
    key: dict[str, Any],
    stop_after: int | None,
    progress: bool,
) -> bool:
    """Steps from `state.step` to the end; True if stopped early by `stop_after`."""
    start = time.perf_counter() - state.wall_s
    ema: list[dict[str, float]] = []
    bar = tqdm(
        total=config.n_steps, initial=state.step, desc="train transcoders", disable=not progress
    )
    with bar:
        while state.step < config.n_steps:
            stats = train_step(state, next(batches), config)
            ema = stats if not ema else [_ema(a, b) for a, b in zip(ema, stats, strict=True)]
            state.wall_s = time.perf_counter() - start
            bar.update(1)
            if state.step % 10 == 0:
                bar.set_postfix_str(
                    " ".join(f"L{i}:fvu={s['fvu']:.3f},l0={s['l0']:.0f}" for i, s in enumerate(ema))
                )
            done = state.step
            if done < config.n_steps and (
                done % config.checkpoint_every == 0 or done == stop_after
            ):
                save_checkpoint(ckpt, state, key)
            if stop_after is not None and done >= stop_after and done < config.n_steps:
                return True
    return False


def _ema(old: dict[str, float], new: dict[str, float]) -> dict[str, float]:
    return {k: 0.95 * old[k] + 0.05 * new[k] for k in old}


def _summary(
    tset: TranscoderSet,
    wall_s: float,
    config: TrainConfig,
    bridge: Any,
    val_tokens: np.ndarray | None,
    eot: int,
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "tokens": config.n_steps * config.batch_size,
        "steps": config.n_steps,
        "wall_time_s": round(wall_s, 1),
        "tokens_per_s": round(config.n_steps * config.batch_size / max(wall_s, 1e-9)),
        "config": asdict(config),
    }
    if val_tokens is not None:
        from transcoders.evaluate import reconstruction_on_tokens

        seq_len = config.harvest.seq_len
        n_windows = min(256, len(document_starts(val_tokens, eot, seq_len)))
        stats = reconstruction_on_tokens(
            tset,
            bridge,
            val_tokens,
            eot=eot,
            n_tokens=n_windows * seq_len,
            seq_len=seq_len,
        )
        summary["val"] = {
            "tokens": stats[0].n_tokens,
            "fvu": [s.fvu for s in stats],
            "l0": [s.l0 for s in stats],
            "dead_fraction": [s.dead_fraction for s in stats],
        }
    log.info("training summary: %s", {k: v for k, v in summary.items() if k != "config"})
    return summary
