"""What an attribution graph explains: directions in logit space at one position.

A target's value is `direction · logits[pos]` (logits before any softcap). A single output logit
is a one-hot direction; the IOI logit difference is `e_IO - e_S`; a probability difference is
linearised as its gradient with respect to the logits on the recorded prompt.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.errors import AttributionError


@dataclass(frozen=True)
class Target:
    """One target node."""

    name: str
    """Shown in graphs and reports, e.g. `" Mary"` or `logit_diff( Mary -  John)`."""
    pos: int
    """Position whose logits the target reads (negative counts from the end)."""
    direction: Float[Tensor, " d_vocab"]
    token: int | None = None
    """The output token, for single-logit targets."""
    probability: float | None = None
    """The token's probability on the recorded prompt, for single-logit targets."""

    def value(self, logits: Float[Tensor, "n_pos d_vocab"]) -> Tensor:
        return logits[self.pos] @ self.direction.to(logits.dtype)


def logit_target(token: int, d_vocab: int, *, name: str, pos: int = -1) -> Target:
    direction = torch.zeros(d_vocab)
    direction[token] = 1
    return Target(name=name, pos=pos, direction=direction, token=token)


def top_logit_targets(
    logits: Float[Tensor, "n_pos d_vocab"],
    names: Sequence[str],
    *,
    pos: int = -1,
    max_count: int = 10,
    cumulative_probability: float = 0.95,
) -> list[Target]:
    """The most likely next tokens at `pos`, up to `max_count` of them or until their total
    probability reaches `cumulative_probability`, whichever comes first. `names[i]` is token i's
    text."""
    if max_count < 1 or not 0 < cumulative_probability <= 1:
        raise AttributionError(
            f"need max_count >= 1 and 0 < cumulative_probability <= 1, got {max_count} and "
            f"{cumulative_probability}"
        )
    probs = torch.softmax(logits[pos].double(), -1)
    top = probs.topk(min(max_count, len(probs)))
    targets: list[Target] = []
    total = 0.0
    for p, token in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        target = logit_target(token, len(probs), name=names[int(token)], pos=pos)
        targets.append(Target(**{**target.__dict__, "probability": p}))
        total += p
        if total >= cumulative_probability:
            break
    return targets


def logit_difference_target(
    good: int, bad: int, d_vocab: int, *, name: str, pos: int = -1
) -> Target:
    """`logit[good] - logit[bad]` at `pos` (e.g. IO minus S for IOI)."""
    direction = torch.zeros(d_vocab)
    direction[good], direction[bad] = 1, -1
    return Target(name=name, pos=pos, direction=direction)


def probability_difference_target(
    logits: Float[Tensor, "n_pos d_vocab"],
    good: Sequence[int],
    bad: Sequence[int],
    *,
    name: str,
    pos: int = -1,
) -> Target:
    """The gradient of `p(good) - p(bad)` with respect to the logits at `pos`, on the recorded
    logits: the first-order direction of a probability difference (e.g. greater-than)."""
    x = logits[pos].detach().double().requires_grad_(True)
    probs = torch.softmax(x, -1)
    (probs[list(good)].sum() - probs[list(bad)].sum()).backward()
    assert x.grad is not None
    return Target(name=name, pos=pos, direction=x.grad.clone())
