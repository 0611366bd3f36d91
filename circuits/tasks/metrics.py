"""Task metrics: what a prompt's logits score, and the same quantity as an attribution target.

A metric reads the logits at one position with a prompt's answer and wrong tokens. Its target is
a direction in logit space whose dot product with those logits is the metric (linear metrics) or
the metric's gradient on the recorded logits (non-linear ones).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.attribution.targets import Target, probability_difference_target

ValueFn = Callable[[Float[Tensor, " d_vocab"], Sequence[int], Sequence[int]], Tensor]
TargetFn = Callable[
    [Float[Tensor, "n_pos d_vocab"], Sequence[int], Sequence[int], int, str], Target
]


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One metric kind, registered under the name task files use."""

    name: str
    """The `metric` value in a task file."""
    needs_wrong: bool
    """Whether the metric reads wrong answers (`wrong` is then required, else forbidden)."""
    value: ValueFn
    """`value(logits, answers, wrong)`: a differentiable scalar."""
    target: TargetFn
    """`target(logits, answers, wrong, pos, name)`: the metric as an attribution target."""


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.name in METRICS:
        raise ValueError(f"duplicate metric name: {metric.name!r}")
    METRICS[metric.name] = metric
    return metric


def _logit_diff_value(
    logits: Float[Tensor, " d_vocab"], answers: Sequence[int], wrong: Sequence[int]
) -> Tensor:
    return logits[list(answers)].mean() - logits[list(wrong)].mean()


def _logit_diff_target(
    logits: Float[Tensor, "n_pos d_vocab"],
    answers: Sequence[int],
    wrong: Sequence[int],
    pos: int,
    name: str,
) -> Target:
    # `logit_difference_target` for one token each, extended to sets (greater-than style)
    n_vocab = logits.shape[-1]
    direction = _mean_one_hot(n_vocab, answers) - _mean_one_hot(n_vocab, wrong)
    return Target(name=name, pos=pos, direction=direction)


def _mean_one_hot(n_vocab: int, tokens: Sequence[int]) -> Tensor:
    """The mean of the tokens' one-hot vectors: the direction whose dot product with the logits
    is the tokens' mean logit."""
    direction = torch.zeros(n_vocab, dtype=torch.float64)
    direction[list(tokens)] += 1 / len(tokens)
    return direction


def _logit_value(
    logits: Float[Tensor, " d_vocab"], answers: Sequence[int], wrong: Sequence[int]
) -> Tensor:
    return logits[list(answers)].mean()


def _logit_target(
    logits: Float[Tensor, "n_pos d_vocab"],
    answers: Sequence[int],
    wrong: Sequence[int],
    pos: int,
    name: str,
) -> Target:
    return Target(name=name, pos=pos, direction=_mean_one_hot(logits.shape[-1], answers))


def _prob_diff_value(
    logits: Float[Tensor, " d_vocab"], answers: Sequence[int], wrong: Sequence[int]
) -> Tensor:
    probs = torch.softmax(logits, -1)
    return probs[list(answers)].sum() - probs[list(wrong)].sum()


def _prob_diff_target(
    logits: Float[Tensor, "n_pos d_vocab"],
    answers: Sequence[int],
    wrong: Sequence[int],
    pos: int,
    name: str,
) -> Target:
    with torch.enable_grad():  # the helper differentiates; callers often run under no_grad
        return probability_difference_target(logits, answers, wrong, name=name, pos=pos)


def _logprob_value(
    logits: Float[Tensor, " d_vocab"], answers: Sequence[int], wrong: Sequence[int]
) -> Tensor:
    return torch.log_softmax(logits, -1)[answers[0]]


def _logprob_target(
    logits: Float[Tensor, "n_pos d_vocab"],
    answers: Sequence[int],
    wrong: Sequence[int],
    pos: int,
    name: str,
) -> Target:
    # d log softmax(x)[a] / dx = e_a - softmax(x), on the recorded logits
    direction = -torch.softmax(logits[pos].detach().double(), -1)
    direction[answers[0]] += 1
    return Target(name=name, pos=pos, direction=direction)


LOGIT_DIFF = register(
    Metric(name="logit_diff", needs_wrong=True, value=_logit_diff_value, target=_logit_diff_target)
)
"""Mean logit of the answers minus mean logit of the wrong tokens (IOI: logit IO - logit S)."""

PROB_DIFF = register(
    Metric(name="prob_diff", needs_wrong=True, value=_prob_diff_value, target=_prob_diff_target)
)
"""Total probability of the answers minus that of the wrong tokens (greater-than)."""

LOGPROB = register(
    Metric(name="logprob", needs_wrong=False, value=_logprob_value, target=_logprob_target)
)
"""Log-probability of the first answer (induction)."""

LOGIT = register(Metric(name="logit", needs_wrong=False, value=_logit_value, target=_logit_target))
"""Mean logit of the answers: a value the model writes into a logit (compiled numerical outputs)."""
