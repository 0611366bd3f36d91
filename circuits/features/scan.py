"""One pass over held-out text that finds, for every feature of every layer, where it fires most.

Windows of `seq_len` tokens open at distinct document starts of the held-out split (the same
fixed windows as `transcoders eval`), as the zoo models were trained. Position 0 of each window
(the end-of-text token) is skipped: transcoders never saw it. The scanned tokens are numbered
by row, `row = window * (seq_len - 1) + position - 1`.

Per feature the scan keeps only a running top-k (values and rows) and a count of active tokens:
each forward batch's activations are merged with `torch.topk` and dropped, so the memory in use
is one batch of activations, never all of them.
"""

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.features.errors import FeatureError

log = logging.getLogger(__name__)

ROWS_PER_FORWARD = 2048
"""Tokens per forward pass of the scan (whole windows, at least one)."""


@dataclass(frozen=True, kw_only=True)
class ScanSettings:
    """What the scan reads; with the transcoder weights and the corpus, it fixes the result."""

    n_tokens: int = 65_536
    """Held-out tokens to read, rounded down to whole windows (at least one)."""
    top_k: int = 8
    """Strongest activations kept per feature."""
    seq_len: int = 128
    """Tokens per window, the first being the end-of-text token (not scanned)."""

    def __post_init__(self) -> None:
        for name, least in (("n_tokens", 1), ("top_k", 1), ("seq_len", 2)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")

    @property
    def n_windows(self) -> int:
        return max(1, self.n_tokens // self.seq_len)


@dataclass(frozen=True, kw_only=True)
class LayerScan:
    """The scan's findings for the features of one transcoder."""

    top_values: Float[Tensor, "d_transcoder top_k"]
    """Strongest activations per feature, descending; 0 past the feature's active tokens."""
    top_rows: Int[Tensor, "d_transcoder top_k"]
    """Scanned-token row of each value; -1 where the value is 0 (no active token left)."""
    n_active: Int[Tensor, " d_transcoder"]
    """Scanned tokens where the feature is active (> 0)."""


@dataclass(frozen=True, kw_only=True)
class FeatureScan:
    """The scanned windows and the findings of every layer."""

    settings: ScanSettings
    """What was scanned."""
    windows: Int[Tensor, "n_windows seq_len"]
    """Token ids of the scanned windows (position 0 included, for context)."""
    layers: tuple[LayerScan, ...]
    """Findings per layer, in layer order."""
    seconds: float
    """Wall time the scan took."""

    @property
    def n_scanned(self) -> int:
        """Tokens scanned: every position of every window but the first."""
        return self.windows.shape[0] * (self.windows.shape[1] - 1)

    def locate(self, row: int) -> tuple[int, int]:
        """(window, position) of scanned-token `row`."""
        window, pos = divmod(row, self.windows.shape[1] - 1)
        return window, pos + 1

    def locate_rows(self, rows: Int[Tensor, "*shape"]) -> tuple[Tensor, Tensor]:
        """(windows, positions) of scanned-token `rows`, elementwise."""
        per_window = self.windows.shape[1] - 1
        return rows.div(per_window, rounding_mode="floor"), rows % per_window + 1


def scan_windows(
    tokens: np.ndarray, *, eot: int, settings: ScanSettings
) -> Int[Tensor, "n_windows seq_len"]:
    """The fixed held-out windows the scan reads (those `transcoders eval` reads)."""
    from transcoders.evaluate import eval_windows

    return eval_windows(
        tokens, eot=eot, n_tokens=settings.n_windows * settings.seq_len, seq_len=settings.seq_len
    )


class _Inputs(Exception):
    """Raised by the last hook: the rest of the forward pass is not needed."""


def _mlp_inputs(bridge: Any, tset: Any, ids: Tensor) -> list[Tensor]:
    """The MLP input every transcoder reads, `[batch * (pos - 1), d_model]` per layer, in rows
    ordered by (window, position), position 0 left out."""
    names = []
    for hooks in tset.hooks:
        if hooks.hook_in not in bridge.hook_dict:
            raise FeatureError(
                f"the model has no hook {hooks.hook_in} (layer {hooks.layer}); the transcoder "
                "set belongs to another model: pass the set trained for this one"
            )
        names.append(bridge.hook_dict[hooks.hook_in].name)  # canonical: fires once
    seen: dict[str, Tensor] = {}

    def keep(tensor: Tensor, hook: Any) -> Tensor:
        seen[hook.name] = tensor
        if len(seen) == len(set(names)):
            raise _Inputs
        return tensor

    with torch.no_grad(), contextlib.suppress(_Inputs):
        bridge.run_with_hooks(ids, fwd_hooks=[(name, keep) for name in dict.fromkeys(names)])
    if missing := [name for name in names if name not in seen]:
        raise FeatureError(f"hooks {missing} did not fire in a forward pass of the model")
    return [seen[name][:, 1:].reshape(-1, seen[name].shape[-1]) for name in names]


class _RunningTopK:
    """Top-k activations per feature over the batches seen so far, and active counts."""

    def __init__(self, d_transcoder: int, k: int, dtype: torch.dtype) -> None:
        self.k = k
        self.values = torch.full((d_transcoder, k), -torch.inf, dtype=dtype)
        self.rows = torch.full((d_transcoder, k), -1, dtype=torch.int64)
        self.n_active = torch.zeros(d_transcoder, dtype=torch.int64)

    def add(self, features: Tensor, first_row: int) -> None:
        # sign(), clamped and summed as floats, counts positives several times faster than
        # (features > 0).sum(0) on CPU; exact for batches under 2**24 rows
        self.n_active += features.sign().clamp_(min=0).sum(0).long()
        # features [n, d_transcoder]: only features whose batch maximum beats their current
        # k-th value can change, and after the first batches they are few
        better = (features.amax(0) > self.values[:, -1]).nonzero().squeeze(1)
        if len(better) == 0:
            return
        candidates = torch.cat([self.values[better], features[:, better].T], dim=1)
        values, index = candidates.topk(self.k, dim=1)  # index < k: a kept value
        old_rows = self.rows[better].gather(1, index.clamp(max=self.k - 1))
        self.values[better] = values
        self.rows[better] = torch.where(index < self.k, old_rows, index - self.k + first_row)

    def result(self) -> LayerScan:
        active = self.values > 0
        return LayerScan(
            top_values=torch.where(active, self.values, 0).float(),
            top_rows=torch.where(active, self.rows, -1).int(),
            n_active=self.n_active,
        )


def scan_features(
    bridge: Any,
    tset: Any,
    windows: Int[Tensor, "n_windows seq_len"],
    *,
    settings: ScanSettings,
    progress: bool = True,
) -> FeatureScan:
    """Top-k activations and active counts of every feature of `tset` on `windows`."""
    from tqdm.auto import tqdm

    if windows.shape[1] != settings.seq_len:
        raise ValueError(f"windows have {windows.shape[1]} tokens, settings say {settings.seq_len}")
    started = time.perf_counter()
    per_forward = max(1, ROWS_PER_FORWARD // settings.seq_len)
    rows_per_window = settings.seq_len - 1
    trackers = [_RunningTopK(t.config.d_transcoder, settings.top_k, t.W_enc.dtype) for t in tset]
    with tqdm(
        total=len(windows) * rows_per_window,
        unit="tok",
        unit_scale=True,
        desc="scanning features",
        disable=not progress,
    ) as bar:
        for start in range(0, len(windows), per_forward):
            inputs = _mlp_inputs(bridge, tset, windows[start : start + per_forward])
            for tracker, transcoder, x in zip(trackers, tset, inputs, strict=True):
                with torch.no_grad():
                    features = transcoder.encode(x.to(transcoder.W_enc.dtype)).features
                tracker.add(features, start * rows_per_window)
            bar.update(len(inputs[0]))
    seconds = time.perf_counter() - started
    log.info("scanned %d tokens in %.1f s", len(windows) * rows_per_window, seconds)
    return FeatureScan(
        settings=settings,
        windows=windows.int(),
        layers=tuple(t.result() for t in trackers),
        seconds=seconds,
    )
