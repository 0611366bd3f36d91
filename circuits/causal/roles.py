"""Head roles of a task, from attention patterns and patching effects.

A role is a rule over measured quantities, the criteria the published circuits used: where a
head attends (mean attention from one role position to another) and what patching it does
(its direct effect on the metric, its effect at one position, its paths into other heads).
Tasks without rules here have no roles.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from circuits.hooks import PATTERN_HOOK


@dataclass(frozen=True)
class Measurements:
    """What the rules read; effects are shares of the clean-minus-corrupt gap."""

    heads: list[str]
    direct: dict[str, float]
    by_position: dict[str, dict[str, float]]
    edges: dict[str, float]
    attention: Callable[[str, str], dict[str, float]]
    """`attention(query_role, key_role)`: head -> mean attention probability."""
    threshold: float
    min_attention: float = 0.2


RoleRule = Callable[[Measurements], dict[str, list[str]]]
ROLE_RULES: dict[str, RoleRule] = {}


def register(task: str) -> Callable[[RoleRule], RoleRule]:
    def add(rule: RoleRule) -> RoleRule:
        if task in ROLE_RULES:
            raise ValueError(f"duplicate role rules for task {task!r}")
        ROLE_RULES[task] = rule
        return rule

    return add


@torch.no_grad()
def attention_reader(bridge: Any, prompts: Sequence[Any]) -> Callable[[str, str], dict[str, float]]:
    """Every prompt's attention patterns, recorded in one pass; the reader gives, for a query
    role and a key role, each head's mean attention probability from one to the other."""
    cfg = bridge.cfg
    names = [PATTERN_HOOK.format(layer=layer) for layer in range(cfg.n_layers)]
    patterns: list[Tensor] = []  # per prompt [n_layers, n_heads, n_pos, n_pos]
    for prompt in prompts:
        _, cache = bridge.run_with_cache(
            torch.tensor(prompt.tokens)[None], names_filter=set(names).__contains__
        )
        patterns.append(torch.stack([cache[n][0] for n in names]).float())

    def mean_attention(query_role: str, key_role: str) -> dict[str, float]:
        total = torch.zeros(cfg.n_layers, cfg.n_heads)
        for prompt, pattern in zip(prompts, patterns, strict=True):
            total += pattern[:, :, prompt.roles[query_role], prompt.roles[key_role]]
        mean = total / len(prompts)
        return {
            f"L{layer}H{head}": float(mean[layer, head])
            for layer in range(cfg.n_layers)
            for head in range(cfg.n_heads)
        }

    return mean_attention


@register("ioi")
def ioi_roles(m: Measurements) -> dict[str, list[str]]:
    """Wang et al. 2022's classes: name movers copy IO at END (positive direct effect, attend
    IO more than S2), negative name movers the same with a negative effect, S-inhibition heads
    act through the name movers' inputs, induction and duplicate-token heads act at S2
    (attending S1+1 and S1), previous-token heads at S1+1 (attending S1)."""
    to_io, to_s2 = m.attention("END", "IO"), m.attention("END", "S2")
    s2_s1, s2_s1next, prev = (
        m.attention("S2", "S1"),
        m.attention("S2", "S1+1"),
        m.attention("S1+1", "S1"),
    )
    at = m.by_position
    cut, seen = m.threshold, m.min_attention

    def moves_io(head: str) -> bool:
        return to_io[head] >= seen and to_io[head] > to_s2[head]

    name_movers = [h for h in m.heads if m.direct[h] >= cut and moves_io(h)]
    negative = [h for h in m.heads if m.direct[h] <= -cut and moves_io(h)]
    receivers = set(name_movers + negative)
    inhibition = [
        h
        for h in m.heads
        if h not in receivers and sum(m.edges.get(f"{h}->{r}", 0.0) for r in receivers) >= cut
    ]
    return {
        "name_mover": name_movers,
        "negative_name_mover": negative,
        "s_inhibition": inhibition,
        "induction": [h for h in m.heads if s2_s1next[h] >= seen and abs(at[h]["S2"]) >= cut],
        "duplicate_token": [h for h in m.heads if s2_s1[h] >= seen and abs(at[h]["S2"]) >= cut],
        "previous_token": [h for h in m.heads if prev[h] >= seen and abs(at[h]["S1+1"]) >= cut],
    }
