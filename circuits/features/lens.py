"""What a feature writes to the vocabulary and which tokens write to it, read off the weights.

- Promoted / suppressed tokens: the logit lens of the decoder row. The row is read as if it were
  the whole residual stream before the final norm, normalised by that norm (centring and unit
  RMS for LayerNorm, unit RMS for RMSNorm, then the norm's gain; its bias, the same for every
  feature, left out) and unembedded: `(N(W_dec[f]) - N(0)) @ W_U`. With the norm's scale frozen,
  as in the attribution graph, this is the feature's direct effect on the logits up to one
  positive factor, so the order of tokens is exact; the scores are those of a unit-RMS residual.
- Input tokens: the direct path from the embedding. Each token's embedding is read as if it
  were the whole residual stream before the layer's MLP-input norm (ln2 of that block),
  normalised by it the same way, and projected on the encoder column:
  `(N_L(W_E[t]) - N_L(0)) @ W_enc[:, f]`. This is an approximation: position embeddings,
  attention and earlier MLPs also write to that residual, so it says which tokens push the
  feature on their own, not which tokens it fires on (see the top contexts for that).

Norms are applied through the model's own norm modules, so every architecture the bridge loads
(LayerNorm, RMSNorm, Gemma's offset gains, folded norms) is read the way it computes.
"""

import functools
from typing import Any, NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor


class TokenScores(NamedTuple):
    """Token ids and their scores for a batch of features, best first."""

    ids: Int[Tensor, "n_features n"]
    scores: Float[Tensor, "n_features n"]


def through_norm(norm: Any, x: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_model"]:
    """`norm(x) - norm(0)`: `x` normalised as a whole residual stream, without the norm's bias."""
    with torch.no_grad():
        return norm(x) - norm(torch.zeros_like(x[:1]))


class FeatureLens:
    """Vocabulary-side views of the features of one transcoder set on one model."""

    def __init__(self, bridge: Any, tset: Any) -> None:
        self._bridge = bridge
        self._tset = tset
        self.n_vocab = min(bridge.cfg.d_vocab, len(bridge.tokenizer))
        """Tokens scored: the tokenizer's (a model may pad its vocabulary with unused rows)."""

    @functools.cached_property
    def _W_U(self) -> Tensor:
        return self._bridge.W_U.detach()[:, : self.n_vocab]

    @functools.cache  # noqa: B019 (one lens per atlas, kept as long as the atlas)
    def _normed_embeddings(self, layer: int) -> Tensor:
        W_E = self._bridge.W_E.detach()[: self.n_vocab]
        return through_norm(self._bridge.blocks[layer].ln2, W_E)

    def logits(self, layer: int, features: Int[Tensor, " n_features"]) -> Tensor:
        """Logit lens of the decoder rows of `features`: `[n_features, n_vocab]`."""
        rows = self._tset[layer].W_dec.detach()[features]
        normed = through_norm(self._bridge.ln_final, rows.to(self._W_U.dtype))
        return normed @ self._W_U

    def input_scores(self, layer: int, features: Int[Tensor, " n_features"]) -> Tensor:
        """Direct-path drive of each token's embedding on `features`: `[n_features, n_vocab]`."""
        W_enc = self._tset[layer].W_enc.detach()[:, features]
        normed = self._normed_embeddings(layer)
        return (normed.to(W_enc.dtype) @ W_enc).T


def standout(scores: Float[Tensor, "n_features n_vocab"]) -> Float[Tensor, " n_features"]:
    """How far each row's top score stands above the rest: the gap between the first and the
    second score, in standard deviations of the row. The top of thousands of scores that no
    token dominates sits close to the second (a gap of a fraction of a deviation)."""
    top2 = scores.topk(2, dim=1).values
    return (top2[:, 0] - top2[:, 1]) / scores.std(dim=1).clamp(min=1e-12)


def top_tokens(scores: Float[Tensor, "n_features n_vocab"], n: int) -> TokenScores:
    """The `n` highest-scoring tokens of each row, best first."""
    values, ids = scores.topk(min(n, scores.shape[1]), dim=1)
    return TokenScores(ids=ids, scores=values)
