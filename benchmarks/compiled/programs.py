"""Causal RASP programs compiled into ground-truth models (runs under the tracr venv only).

Every selector here lets a query position see only keys at positions <= its own, so the compiled
model with `causal=True` computes the same function as the RASP program, and the model maps onto
GPT-2's causal attention. Each factory returns the program's output SOp; the SOps are named so
that the ground-truth files read as the program does.
"""

import dataclasses
from collections.abc import Callable

from tracr.rasp import rasp


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompiledProgram:
    """A RASP program and the settings it is compiled with."""

    name: str
    """Directory name under `models/`."""
    make: Callable[[], rasp.SOp]
    """Builds the program's output SOp."""
    vocab: tuple[str, ...]
    """Input tokens (BOS and PAD are added by the compiler)."""
    max_seq_len: int
    """Longest input, BOS not counted."""
    description: str
    """One line: what the output is at each position."""


def make_frac_prevs() -> rasp.SOp:
    """Fraction of the tokens at positions <= i that are "x" (numerical output)."""
    is_x = rasp.numerical(rasp.Map(lambda t: 1 if t == "x" else 0, rasp.tokens)).named("is_x")
    prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ).named("prevs")
    return rasp.numerical(rasp.Aggregate(prevs, is_x, default=0)).named("frac_prevs")


def make_prev_token() -> rasp.SOp:
    """The token one position back (categorical output; position 0 has none)."""
    prev = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == q - 1).named("prev")
    return rasp.categorical(rasp.Aggregate(prev, rasp.tokens)).named("prev_token")


def make_running_count() -> rasp.SOp:
    """How often the current token occurs at positions <= i (categorical output, 1..n).

    tracr does not compile `SelectorAnd`, so "same token and not later" is one selector on a
    (token, index) pair.
    """
    tok_idx = rasp.categorical(
        rasp.SequenceMap(lambda t, i: (t, i), rasp.tokens, rasp.indices)
    ).named("tok_idx")
    same_tok_before = rasp.Select(
        tok_idx, tok_idx, lambda k, q: k[0] == q[0] and k[1] <= q[1]
    ).named("same_tok_before")
    return rasp.SelectorWidth(same_tok_before).named("running_count")


def make_repeat_at_distance_two() -> rasp.SOp:
    """Whether the tokens at i-1 and i-2 are equal (categorical bool output).

    Its two shifts are independent, so tracr puts them in one layer as two heads: the one
    program here that exercises n_head > 1. Positions 0 and 1 lack a token to compare; there
    the compiled model's output is whatever its MLP gives for empty inputs.
    """
    prev1 = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == q - 1).named("prev1")
    prev2 = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == q - 2).named("prev2")
    back1 = rasp.categorical(rasp.Aggregate(prev1, rasp.tokens)).named("back1")
    back2 = rasp.categorical(rasp.Aggregate(prev2, rasp.tokens)).named("back2")
    return rasp.categorical(
        rasp.SequenceMap(lambda a, b: a is not None and a == b, back1, back2)
    ).named("repeat2")


def make_frac_repeats() -> rasp.SOp:
    """Fraction of positions j <= i whose tokens at j-1 and j-2 are equal (numerical output),
    with j-1 and j-2 clamped at 0 so that every position has a value to average.

    repeat_at_distance_two's two heads and MLP, an MLP that turns its answer into a number, then
    a mean over the prefix: tracr lays this out in three layers, leaving attention and MLP
    slots that the circuit does not use.
    """
    back = lambda n: lambda k, q: k == max(q - n, 0)  # noqa: E731
    back1 = rasp.categorical(
        rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, back(1)).named("prev1"), rasp.tokens)
    ).named("back1")
    back2 = rasp.categorical(
        rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, back(2)).named("prev2"), rasp.tokens)
    ).named("back2")
    repeat2 = rasp.categorical(rasp.SequenceMap(lambda a, b: a == b, back1, back2)).named("repeat2")
    repeat = rasp.numerical(rasp.Map(lambda r: 1 if r else 0, repeat2)).named("repeat")
    prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ).named("prevs")
    return rasp.numerical(rasp.Aggregate(prevs, repeat, default=0)).named("frac_repeats")


PROGRAMS = (
    CompiledProgram(
        name="frac_prevs",
        make=make_frac_prevs,
        vocab=("x", "y", "z"),
        max_seq_len=8,
        description='fraction of tokens at positions <= i equal to "x"',
    ),
    CompiledProgram(
        name="prev_token",
        make=make_prev_token,
        vocab=("a", "b", "c"),
        max_seq_len=8,
        description="token at position i-1 (none at position 0)",
    ),
    CompiledProgram(
        name="running_count",
        make=make_running_count,
        vocab=("a", "b", "c"),
        max_seq_len=8,
        description="number of positions <= i holding the token at i",
    ),
    CompiledProgram(
        name="repeat_at_distance_two",
        make=make_repeat_at_distance_two,
        vocab=("a", "b", "c"),
        max_seq_len=8,
        description="whether the tokens at positions i-1 and i-2 are equal",
    ),
    CompiledProgram(
        name="frac_repeats",
        make=make_frac_repeats,
        vocab=("a", "b", "c"),
        max_seq_len=8,
        description="fraction of positions j <= i with equal tokens at j-1 and j-2 (clamped at 0)",
    ),
)
