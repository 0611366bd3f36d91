"""How well a transcoder set imitates the MLPs of its model.

Per layer, on held-out text: the fraction of variance of the MLP output left unexplained (FVU),
the mean number of active features per token (L0), and the share of features that are dead
(never active on the evaluation tokens, so the share depends on how many are used: the
isolated stats use 262,144 tokens by default, the spliced ones 32,768) or dense (active on more
than `DENSE_RATE` of them). Each is measured twice: with the transcoder reading
the original model's MLP inputs ("isolated"), and inside the model with every MLP replaced
("spliced"), where errors of earlier layers shift the inputs.

With every MLP replaced (and with one layer replaced at a time): next-token cross-entropy, its
KL divergence to the original model, and the loss recovered relative to zero-ablating the same
MLPs, `(CE_zero - CE_spliced) / (CE_zero - CE_orig)`. Only the predictions at positions whose
MLPs are replaced are scored (from position 1 on; see `splice`). Task scores (IOI, greater-than)
on held-out prompts, for the original and the fully spliced model, and their ratio (also
with each layer spliced alone).
"""

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor
from tqdm import tqdm

from circuits.zoo.scores import task_scores
from circuits.zoo.train import document_starts
from transcoders.errors import TranscoderError
from transcoders.harvest import Activations, harvest
from transcoders.splice import observe_hooks, splice_hooks, spliced_logits
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet

log = logging.getLogger(__name__)

DENSE_RATE = 0.1
"""A feature active on more than this share of evaluation tokens counts as dense."""
EVAL_SEED = 54321
"""Seed of the evaluation windows; fixed so that numbers are comparable across sets."""


@dataclass(frozen=True, kw_only=True)
class LayerStats:
    """Reconstruction and sparsity of one layer's transcoder on evaluation tokens."""

    layer: int
    """Index of the transformer block."""
    n_tokens: int
    """Token positions measured."""
    fvu: float
    """Squared error over the total variance of the MLP output."""
    l0: float
    """Mean number of active features per token."""
    dead_fraction: float
    """Share of features never active on these tokens."""
    dense_fraction: float
    """Share of features active on more than DENSE_RATE of these tokens."""


@dataclass(kw_only=True)
class _Accumulator:
    """Running sums for LayerStats, in float64."""

    d_model: int
    d_transcoder: int
    n: int = 0
    error: float = 0.0
    sum_sq: float = 0.0
    l0: float = 0.0
    sum_y: Tensor = field(init=False)
    fired: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.sum_y = torch.zeros(self.d_model, dtype=torch.float64)
        self.fired = torch.zeros(self.d_transcoder, dtype=torch.int64)

    def add(self, transcoder: Transcoder, x: Tensor, y: Tensor) -> None:
        x, y = x.reshape(-1, x.shape[-1]).float(), y.reshape(-1, y.shape[-1]).float()
        with torch.no_grad():
            features = transcoder.encode(x).features
            recon = transcoder.decode(features) + transcoder.skip_path(x)
        active = features > 0
        self.n += len(x)
        self.error += (y - recon).double().pow(2).sum().item()
        self.sum_sq += y.double().pow(2).sum().item()
        self.sum_y += y.double().sum(0)
        self.l0 += active.sum().item()
        self.fired += active.sum(0)

    def result(self, layer: int) -> LayerStats:
        variance = self.sum_sq - self.sum_y.pow(2).sum().item() / max(self.n, 1)
        rates = self.fired.double() / max(self.n, 1)
        return LayerStats(
            layer=layer,
            n_tokens=self.n,
            fvu=self.error / variance if variance > 0 else math.nan,
            l0=self.l0 / max(self.n, 1),
            dead_fraction=(self.fired == 0).double().mean().item(),
            dense_fraction=(rates > DENSE_RATE).double().mean().item(),
        )


def _accumulators(tset: TranscoderSet) -> list[_Accumulator]:
    return [
        _Accumulator(d_model=t.config.d_model, d_transcoder=t.config.d_transcoder) for t in tset
    ]


def reconstruction_stats(tset: TranscoderSet, batches: Iterable[Activations]) -> list[LayerStats]:
    """Per-layer stats of `tset` on harvested activations (each layer on the original inputs)."""
    acc = _accumulators(tset)
    for acts in batches:
        for i, transcoder in enumerate(tset):
            acc[i].add(transcoder, acts.mlp_in[:, i], acts.mlp_out[:, i])
    return [a.result(i) for i, a in enumerate(acc)]


def eval_windows(
    tokens: np.ndarray, *, eot: int, n_tokens: int, seq_len: int = 256
) -> Int[Tensor, "n_windows seq_len"]:
    """Fixed windows of held-out text opening at distinct document starts (at least one)."""
    starts = document_starts(tokens, eot, seq_len)
    n = max(1, n_tokens // seq_len)
    if n > len(starts):
        raise TranscoderError(
            f"{len(tokens)} held-out tokens have only {len(starts)} windows of {seq_len}; "
            f"lower --n-tokens to at most {len(starts) * seq_len}"
        )
    chosen = np.sort(np.random.default_rng(EVAL_SEED).choice(starts, size=n, replace=False))
    return torch.from_numpy(
        np.stack([tokens[s - 1 : s - 1 + seq_len] for s in chosen]).astype(np.int64)
    )


def reconstruction_on_tokens(
    tset: TranscoderSet,
    bridge: Any,
    tokens: np.ndarray,
    *,
    eot: int,
    n_tokens: int,
    seq_len: int = 256,
    windows_per_forward: int = 16,
) -> list[LayerStats]:
    """`reconstruction_stats` on activations harvested from fixed windows of `tokens`."""
    windows = eval_windows(tokens, eot=eot, n_tokens=n_tokens, seq_len=seq_len)
    chunks = tqdm(
        windows.split(windows_per_forward), desc="per-layer stats", leave=False, disable=None
    )
    batches = (harvest(bridge, ids) for ids in chunks)
    return reconstruction_stats(tset, batches)


@dataclass(kw_only=True)
class _LossSums:
    """Summed next-token losses of one spliced variant over the scored positions."""

    ce: float = 0.0
    kl: float = 0.0

    def add(self, logits: Tensor, reference: Tensor, targets: Tensor) -> None:
        logp = logits[:, 1:-1].double().log_softmax(-1)  # scored: predictions at positions >= 1
        ref = reference[:, 1:-1].double().log_softmax(-1)
        self.ce -= logp.gather(-1, targets[:, 2:, None]).sum().item()
        self.kl += (ref.exp() * (ref - logp)).sum().item()


def loss_recovered(ce_orig: float, ce_spliced: float, ce_zero: float) -> float:
    """(CE_zero - CE_spliced) / (CE_zero - CE_orig): 1 when splicing costs nothing, 0 when it
    is as bad as deleting the MLPs."""
    gap = ce_zero - ce_orig
    return (ce_zero - ce_spliced) / gap if gap != 0 else math.nan


def language_model_metrics(
    bridge: Any,
    tset: TranscoderSet,
    windows: Int[Tensor, "n_windows seq_len"],
    *,
    windows_per_forward: int = 16,
) -> dict[str, Any]:
    """Cross-entropy, KL and loss recovered with all MLPs spliced and with each alone, plus the
    isolated and spliced per-layer stats (see the module docstring)."""
    isolated, spliced = _accumulators(tset), _accumulators(tset)
    variants = {"all": None, **{f"layer{i}": [i] for i in range(tset.n_layers)}}
    sums = {f"{name}.{r}": _LossSums() for name in variants for r in ("transcoder", "zero")}
    orig = _LossSums()
    n_scored = 0
    chunks = windows.split(windows_per_forward)
    for ids in tqdm(chunks, desc="losses", leave=False, disable=None):
        targets = ids
        with torch.no_grad():
            observe = observe_hooks(tset, lambda i, x, y: isolated[i].add(tset[i], x, y))
            reference = bridge.run_with_hooks(ids, fwd_hooks=observe)
            orig.add(reference, reference, targets)
            hooks = splice_hooks(tset, observe=lambda i, x, y: spliced[i].add(tset[i], x, y))
            sums["all.transcoder"].add(
                bridge.run_with_hooks(ids, fwd_hooks=hooks), reference, targets
            )
            for name, layers in variants.items():
                for r in ("transcoder", "zero"):
                    if (name, r) != ("all", "transcoder"):
                        logits = spliced_logits(bridge, tset, ids, layers, replacement=r)
                        sums[f"{name}.{r}"].add(logits, reference, targets)
        n_scored += ids.shape[0] * (ids.shape[1] - 2)
    ce_orig = orig.ce / n_scored

    def summary(name: str) -> dict[str, float]:
        ce, zero = sums[f"{name}.transcoder"].ce / n_scored, sums[f"{name}.zero"].ce / n_scored
        return {
            "ce_spliced": ce,
            "ce_zero": zero,
            "kl": sums[f"{name}.transcoder"].kl / n_scored,
            "loss_recovered": loss_recovered(ce_orig, ce, zero),
        }

    return {
        "n_tokens": n_scored,
        "ce_original": ce_orig,
        "all_layers": summary("all"),
        "per_layer": [summary(f"layer{i}") for i in range(tset.n_layers)],
        "isolated": [asdict(a.result(i)) for i, a in enumerate(isolated)],
        "spliced": [asdict(a.result(i)) for i, a in enumerate(spliced)],
    }


def task_metrics(bridge: Any, tset: TranscoderSet, n_prompts: int = 200) -> dict[str, Any]:
    """Task scores on held-out prompts for the original and the fully spliced model, and the
    ratio with each layer spliced alone (`ratio_by_layer`), which tells where a loss comes from."""

    def spliced(layers: list[int] | None) -> Callable[[Tensor], Tensor]:
        return lambda ids: spliced_logits(bridge, tset, ids, layers)

    def ratio(score: float, original: float) -> float:
        return score / original if original != 0 else math.nan

    with torch.no_grad():
        original = task_scores(lambda ids: bridge(ids), bridge.tokenizer, n_prompts=n_prompts)
    replaced = task_scores(spliced(None), bridge.tokenizer, n_prompts=n_prompts)
    by_layer = [
        task_scores(spliced([layer]), bridge.tokenizer, n_prompts=n_prompts)
        for layer in range(tset.n_layers)
    ]
    return {
        key: {
            "original": value,
            "spliced": replaced[key],
            "ratio": ratio(replaced[key], value),
            "ratio_by_layer": [ratio(scores[key], value) for scores in by_layer],
        }
        for key, value in original.items()
    }


def evaluate_transcoders(
    bridge: Any,
    tset: TranscoderSet,
    tokens: np.ndarray,
    *,
    eot: int,
    n_tokens: int = 32_768,
    n_isolated_tokens: int = 262_144,
    seq_len: int = 256,
    n_prompts: int | None = 200,
) -> dict[str, Any]:
    """Every metric of the module docstring as one JSON-ready dict (tasks skipped if
    `n_prompts` is None, e.g. for a model whose tokenizer lacks the task words).

    The isolated per-layer stats (FVU, L0, dead, dense) use `n_isolated_tokens` (at most every
    window the held-out text has): one forward pass per window, so they can afford the long
    window that "dead" needs; on 32,768 tokens any feature rarer than that counts as dead."""
    windows = eval_windows(tokens, eot=eot, n_tokens=n_tokens, seq_len=seq_len)
    log.info("evaluating on %d windows of %d tokens", len(windows), seq_len)
    report: dict[str, Any] = {
        "model": tset.model,
        "dense_rate": DENSE_RATE,
        **language_model_metrics(bridge, tset, windows),
    }
    available = len(document_starts(tokens, eot, seq_len)) * seq_len
    n_isolated = max(n_tokens, min(n_isolated_tokens, available))
    if n_isolated > n_tokens:
        log.info("per-layer stats on %d held-out tokens", n_isolated)
        stats = reconstruction_on_tokens(
            tset, bridge, tokens, eot=eot, n_tokens=n_isolated, seq_len=seq_len
        )
        report["isolated"] = [asdict(s) for s in stats]
    report["n_isolated_tokens"] = report["isolated"][0]["n_tokens"]
    if n_prompts is not None:
        report["tasks"] = task_metrics(bridge, tset, n_prompts)
    return report
