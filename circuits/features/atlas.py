"""The feature atlas: readable descriptions of every feature of one transcoder set.

`build_atlas` scans held-out text once for all features of all layers (scan.py); the atlas
turns the scan's findings and views of the weights (lens.py) into `FeatureDescription`s on
demand, a layer's batch at a time, and remembers them. `load_or_build_atlas` (cache.py) keeps
the scan on disk so that it runs once per transcoder set.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from circuits.features.description import Context, FeatureDescription
from circuits.features.errors import FeatureError
from circuits.features.labels import feature_label
from circuits.features.lens import FeatureLens, TokenScores, standout, top_tokens
from circuits.features.scan import FeatureScan, ScanSettings, scan_features, scan_windows
from circuits.features.token_strings import TokenStrings

log = logging.getLogger(__name__)

N_TOKENS_LISTED = 10
"""Promoted, suppressed and input tokens listed per feature."""
CONTEXT_BEFORE = 9
"""Tokens shown before the active token of a context."""
CONTEXT_AFTER = 2
"""Tokens shown after it (so a context holds up to 12 tokens)."""
LENS_BATCH = 256
"""Features whose logit lens is computed at once (a `[batch, d_vocab]` matrix)."""


class FeatureAtlas:
    """Descriptions of the features of one transcoder set, indexed by (layer, feature)."""

    def __init__(self, scan: FeatureScan, *, bridge: Any, tset: Any, path: Path | None = None):
        if len(scan.layers) != tset.n_layers:
            raise FeatureError(
                f"the scan covers {len(scan.layers)} layers, the transcoder set {tset.n_layers}; "
                "rebuild the atlas for this set"
            )
        for layer, (found, transcoder) in enumerate(zip(scan.layers, tset, strict=True)):
            if found.n_active.shape[0] != transcoder.config.d_transcoder:
                raise FeatureError(
                    f"the scan of layer {layer} has {found.n_active.shape[0]} features, the "
                    f"transcoder {transcoder.config.d_transcoder}; rebuild the atlas for this set"
                )
        self.scan = scan
        """The scan's findings (what the cache stores)."""
        self.path = path
        """Directory the atlas is cached in, if any."""
        self._lens = FeatureLens(bridge, tset)
        self._strings = TokenStrings(bridge.tokenizer)
        self._described: dict[tuple[int, int], FeatureDescription] = {}
        self._labels: dict[tuple[int, int], str] = {}

    @property
    def n_layers(self) -> int:
        return len(self.scan.layers)

    def d_transcoder(self, layer: int) -> int:
        return self.scan.layers[layer].n_active.shape[0]

    def __getitem__(self, key: tuple[int, int]) -> FeatureDescription:
        return self.describe([key])[self._check(key)]

    def __len__(self) -> int:
        return sum(self.d_transcoder(layer) for layer in range(self.n_layers))

    def describe(
        self, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], FeatureDescription]:
        """Descriptions of the features `keys` ((layer, feature) pairs), in the order given."""
        keys = [self._check(key) for key in keys]
        todo: dict[int, list[int]] = defaultdict(list)
        for layer, feature in dict.fromkeys(keys):
            if (layer, feature) not in self._described:
                todo[layer].append(feature)
        for layer, features in todo.items():
            for start in range(0, len(features), LENS_BATCH):
                self._describe_layer(layer, features[start : start + LENS_BATCH])
        return {key: self._described[key] for key in keys}

    def labels(self, keys: Iterable[tuple[int, int]] | None = None) -> dict[tuple[int, int], str]:
        """The labels of the features `keys` (default: every feature), in the order given;
        cheaper than whole descriptions (no contexts or token lists are decoded)."""
        if keys is None:
            keys = [
                (layer, f)
                for layer in range(self.n_layers)
                for f in range(self.d_transcoder(layer))
            ]
        keys = [self._check(key) for key in keys]
        todo: dict[int, list[int]] = defaultdict(list)
        for layer, feature in dict.fromkeys(keys):
            if (layer, feature) not in self._labels:
                todo[layer].append(feature)
        for layer, features in todo.items():
            for start in range(0, len(features), LENS_BATCH):
                self._label_layer(layer, features[start : start + LENS_BATCH])
        return {key: self._labels[key] for key in keys}

    def _label_layer(self, layer: int, features: list[int]) -> None:
        index = torch.tensor(features, dtype=torch.int64)
        logits = self._lens.logits(layer, index)
        gaps, top = standout(logits).tolist(), logits.argmax(dim=1).tolist()
        rows = self.scan.layers[layer].top_rows[index].long()  # [n, top_k], -1 past the active
        window, pos = self.scan.locate_rows(rows.clamp(min=0))
        active = self.scan.windows[window, pos].tolist()
        valid = (rows >= 0).tolist()
        for i, feature in enumerate(features):
            tokens = [self._strings[t] for t, ok in zip(active[i], valid[i], strict=True) if ok]
            self._labels[(layer, feature)] = feature_label(
                promoted=self._strings[top[i]], gap=gaps[i], active_tokens=tokens
            )

    def _check(self, key: tuple[int, int]) -> tuple[int, int]:
        return check_key(key, [self.d_transcoder(layer) for layer in range(self.n_layers)])

    def _describe_layer(self, layer: int, features: list[int]) -> None:
        index = torch.tensor(features, dtype=torch.int64)
        logits = self._lens.logits(layer, index)
        promoted = top_tokens(logits, N_TOKENS_LISTED)
        suppressed = top_tokens(-logits, N_TOKENS_LISTED)
        inputs = top_tokens(self._lens.input_scores(layer, index), N_TOKENS_LISTED)
        labels = self.labels((layer, f) for f in features)
        found = self.scan.layers[layer]
        for i, feature in enumerate(features):
            self._described[(layer, feature)] = FeatureDescription(
                layer=layer,
                feature=feature,
                label=labels[(layer, feature)],
                frequency=int(found.n_active[feature]) / self.scan.n_scanned,
                max_activation=float(found.top_values[feature, 0]),
                top_contexts=self._contexts(layer, feature),
                promoted=self._pairs(promoted, i),
                suppressed=[(t, -s) for t, s in self._pairs(suppressed, i)],
                input_tokens=self._pairs(inputs, i),
            )

    def _contexts(self, layer: int, feature: int) -> list[Context]:
        found = self.scan.layers[layer]
        contexts = []
        for value, row in zip(
            found.top_values[feature].tolist(), found.top_rows[feature].tolist(), strict=True
        ):
            if row < 0:
                break
            window, pos = self.scan.locate(row)
            first = max(0, pos - CONTEXT_BEFORE)
            ids = self.scan.windows[window, first : pos + CONTEXT_AFTER + 1].tolist()
            contexts.append(
                Context(tokens=self._strings.many(ids), active=pos - first, activation=value)
            )
        return contexts

    def _pairs(self, top: TokenScores, i: int) -> list[tuple[str, float]]:
        return [
            (self._strings[t], s)
            for t, s in zip(top.ids[i].tolist(), top.scores[i].tolist(), strict=True)
        ]


def check_key(key: tuple[int, int], widths: Sequence[int]) -> tuple[int, int]:
    """`key` as a (layer, feature) pair of ints, refused unless it names a feature of a set
    whose layers have `widths` features each."""
    layer, feature = (int(k) for k in key)
    if not 0 <= layer < len(widths):
        raise FeatureError(
            f"layer {layer} does not exist; the transcoder set has layers 0..{len(widths) - 1}"
        )
    if not 0 <= feature < widths[layer]:
        raise FeatureError(
            f"feature {feature} does not exist in layer {layer}; its transcoder has "
            f"features 0..{widths[layer] - 1}"
        )
    return layer, feature


def build_atlas(
    bridge: Any,
    tset: Any,
    tokens: np.ndarray,
    *,
    eot: int,
    seq_len: int,
    n_tokens: int = 65_536,
    top_k: int = 8,
    progress: bool = True,
) -> FeatureAtlas:
    """Scan `n_tokens` of `tokens` (held-out text; `eot` separates its documents) in windows of
    `seq_len` for the `top_k` strongest activations of every feature of `tset`."""
    tset.check_fits(bridge)
    settings = ScanSettings(n_tokens=n_tokens, top_k=top_k, seq_len=seq_len)
    windows = scan_windows(tokens, eot=eot, settings=settings)
    scan = scan_features(bridge, tset, windows, settings=settings, progress=progress)
    return FeatureAtlas(scan, bridge=bridge, tset=tset)
