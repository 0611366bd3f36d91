"""Measure a task's causal reference on a model: every head and MLP resampled from the
corrupted prompt (all positions), mean-ablated at each role position (its mean output there over
the prompts: a corruption that changes only S2 cannot show what happens before S2), every path
between components patched from the corrupted prompt, and head roles.

Each effect is `mean(m_clean - m_patched) / mean(m_clean - m_corrupt)` over the prompts, so the
prompts' own noise averages out before the division.
"""

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from circuits.causal.patching import Outputs, Patch, patched_metrics, record_outputs
from circuits.causal.paths import path_patched_metrics
from circuits.causal.reference import ComponentEffect, Reference
from circuits.causal.roles import ROLE_RULES, Measurements, mean_attention
from circuits.components.naming import LOGITS, component_edges, components


def prompt_metric(prompt_set: Any, prompt: Any):
    return lambda logits: prompt_set.metric_value(logits[prompt.position], prompt)


def role_means(
    recorded: Sequence[Outputs], prompts: Sequence[Any], roles: Sequence[str]
) -> dict[str, Outputs]:
    """Per role, every component's output at that role's position averaged over the prompts
    (positions as a leading axis of length one)."""

    def mean(tensors: list[Tensor]) -> Tensor:
        return torch.stack(tensors).mean(0, keepdim=False)[None]

    out = {}
    for role in roles:
        at = [p.roles[role] for p in prompts]
        n_layers = len(recorded[0].z)
        out[role] = Outputs(
            z=[
                mean([r.z[layer][i] for r, i in zip(recorded, at, strict=True)])
                for layer in range(n_layers)
            ],
            mlp=[
                mean([r.mlp[layer][i] for r, i in zip(recorded, at, strict=True)])
                for layer in range(n_layers)
            ],
            embed=mean([r.embed[i] for r, i in zip(recorded, at, strict=True)]),
        )
    return out


def with_role_means(
    clean: Outputs, means: dict[str, Outputs], prompt: Any, roles: Sequence[str]
) -> Outputs:
    """`clean` with each role's position holding that role's mean outputs."""
    z, mlp, embed = (
        [t.clone() for t in clean.z],
        [t.clone() for t in clean.mlp],
        clean.embed.clone(),
    )
    for role in roles:
        i, mean = prompt.roles[role], means[role]
        for layer in range(len(z)):
            z[layer][i] = mean.z[layer][0]
            mlp[layer][i] = mean.mlp[layer][0]
        embed[i] = mean.embed[0]
    return Outputs(z=z, mlp=mlp, embed=embed)


@torch.no_grad()
def compute_reference(
    bridge: Any,
    prompt_set: Any,
    *,
    model_spec: str,
    threshold: float,
    command: str,
    roles: Sequence[str] | None = None,
) -> Reference:
    """The reference of `prompt_set`'s task on `bridge`; `roles` are the role positions whose
    single-position effects are measured (default: every role of the prompts)."""
    start = time.perf_counter()
    cfg = bridge.cfg
    names = [c.name for c in components(cfg.n_layers, cfg.n_heads)]
    edges = component_edges(cfg.n_layers, cfg.n_heads)
    positions = list(roles) if roles is not None else list(prompt_set.roles)
    n = len(prompt_set.prompts)
    gap = 0.0
    clean_sum = corrupt_sum = 0.0
    total = torch.zeros(len(names))
    at = torch.zeros(len(positions), len(names))
    paths = torch.zeros(len(edges))
    recorded = [record_outputs(bridge, torch.tensor(p.tokens)) for p in prompt_set.prompts]
    means = role_means(recorded, prompt_set.prompts, positions)
    for prompt, clean in tqdm(
        list(zip(prompt_set.prompts, recorded, strict=True)), desc="causal reference", unit="prompt"
    ):
        tokens = torch.tensor(prompt.tokens)
        metric = prompt_metric(prompt_set, prompt)
        corrupt = record_outputs(bridge, torch.tensor(prompt.corrupt_tokens))
        m_clean = float(metric(bridge(tokens[None])[0]))
        m_corrupt = float(metric(bridge(torch.tensor(prompt.corrupt_tokens)[None])[0]))
        clean_sum, corrupt_sum = clean_sum + m_clean, corrupt_sum + m_corrupt
        gap += m_clean - m_corrupt
        resampled = patched_metrics(bridge, tokens, corrupt, [{c: None} for c in names], metric)
        total += m_clean - resampled
        averaged = with_role_means(clean, means, prompt, positions)
        patches: list[Patch] = []
        for role in positions:
            where = torch.zeros(len(tokens), dtype=torch.bool)
            where[prompt.roles[role]] = True
            patches += [Patch({name: where}) for name in names]
        measured = m_clean - patched_metrics(bridge, tokens, averaged, patches, metric)
        at += measured.view(len(positions), len(names))
        paths += m_clean - path_patched_metrics(bridge, tokens, clean, corrupt, edges, metric)
    if abs(gap / n) < 1e-6:
        raise ValueError(
            f"task {prompt_set.spec.name}: the clean and corrupted prompts give the same mean "
            "metric on this model; there is nothing to attribute"
        )
    total, at, paths = total / gap, at / gap, paths / gap
    edge_effects = {f"{s}->{r}": float(v) for (s, r), v in zip(edges, paths, strict=True)}
    effects = {
        name: ComponentEffect(
            total=float(total[i]),
            direct=edge_effects.get(f"{name}->{LOGITS}", 0.0),
            by_position={role: float(at[j, i]) for j, role in enumerate(positions)},
        )
        for i, name in enumerate(names)
    }
    task = prompt_set.spec.name
    found = {}
    if task in ROLE_RULES:
        found = ROLE_RULES[task](
            Measurements(
                heads=[c.name for c in components(cfg.n_layers, cfg.n_heads) if c.is_head],
                direct={k: e.direct for k, e in effects.items()},
                by_position={k: e.by_position for k, e in effects.items()},
                edges=edge_effects,
                attention=lambda q, k: mean_attention(bridge, prompt_set.prompts, q, k),
                threshold=threshold,
            )
        )
    return Reference(
        task=task,
        model=model_spec,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        n_prompts=n,
        metric_clean=clean_sum / n,
        metric_corrupt=corrupt_sum / n,
        components=effects,
        edges=edge_effects,
        roles=found,
        threshold=threshold,
        command=command,
        seconds=time.perf_counter() - start,
    )
