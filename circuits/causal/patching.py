"""Activation patching of heads and MLPs on the real model: give components (at some positions)
the output they have on another prompt, recompute everything downstream, read the metric.

The prompts of a task come in pairs of equal length (clean, corrupted), so a component's
output on one can replace its output on the other position by position. A head's output is its
`z` (attention-weighted values, before the output projection); an MLP's is `hook_mlp_out`.
Each copy in a batch carries its own patch, so one forward pass measures many patches.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from circuits.causal.naming import parse_component
from circuits.hooks import MLP_OUT_HOOK, TOKEN_EMBED_HOOK, Z_HOOK, Hook
from circuits.tasks import PromptSet, TaskPrompt

Metric = Callable[[Float[Tensor, "n_pos d_vocab"]], Tensor]
"""A prompt's task metric, read from its logits."""


@dataclass(frozen=True)
class Outputs:
    """One prompt's component outputs."""

    z: list[Float[Tensor, "n_pos n_heads d_head"]]
    """Per layer."""
    mlp: list[Float[Tensor, "n_pos d_model"]]
    """Per layer."""
    embed: Float[Tensor, "n_pos d_model"]
    """Token embeddings (the positional ones do not change between paired prompts)."""


@torch.no_grad()
def record_run(
    bridge: Any, tokens: Int[Tensor, " n_pos"]
) -> tuple[Outputs, Float[Tensor, "n_pos d_vocab"]]:
    """One forward pass: the component outputs and the logits."""
    n_layers = bridge.cfg.n_layers
    z_names = [Z_HOOK.format(layer=layer) for layer in range(n_layers)]
    mlp_names = [MLP_OUT_HOOK.format(layer=layer) for layer in range(n_layers)]
    wanted = {*z_names, *mlp_names, TOKEN_EMBED_HOOK}
    logits, cache = bridge.run_with_cache(tokens[None], names_filter=wanted.__contains__)
    outputs = Outputs(
        z=[cache[n][0] for n in z_names],
        mlp=[cache[n][0] for n in mlp_names],
        embed=cache[TOKEN_EMBED_HOOK][0],
    )
    return outputs, logits[0]


def prompt_metric(prompt_set: PromptSet, prompt: TaskPrompt) -> Metric:
    """The task metric of one prompt, read from its logits."""
    return lambda logits: prompt_set.metric_value(logits[prompt.position], prompt)


@dataclass(frozen=True)
class PromptRun:
    """One task prompt run clean and corrupted: what every patching method starts from."""

    tokens: Int[Tensor, " n_pos"]
    corrupt_tokens: Int[Tensor, " n_pos"]
    metric: Metric
    clean: Outputs
    corrupt: Outputs
    m_clean: float
    m_corrupt: float


def run_prompt(bridge: Any, prompt_set: PromptSet, prompt: TaskPrompt) -> PromptRun:
    """Two forward passes: the clean and the corrupted prompt, outputs and metric values."""
    tokens, corrupt_tokens = torch.tensor(prompt.tokens), torch.tensor(prompt.corrupt_tokens)
    metric = prompt_metric(prompt_set, prompt)
    clean, clean_logits = record_run(bridge, tokens)
    corrupt, corrupt_logits = record_run(bridge, corrupt_tokens)
    return PromptRun(
        tokens=tokens,
        corrupt_tokens=corrupt_tokens,
        metric=metric,
        clean=clean,
        corrupt=corrupt,
        m_clean=float(metric(clean_logits)),
        m_corrupt=float(metric(corrupt_logits)),
    )


Patch = dict[str, Bool[Tensor, " n_pos"] | None]
"""Component name -> the positions to patch (None: every position)."""


def _masks(
    patches: Sequence[Patch], n_layers: int, n_heads: int, n_pos: int
) -> tuple[list[Tensor], list[Tensor]]:
    """Per layer, which (copy, position, head) takes the source's z and which (copy, position)
    the source's MLP output."""
    heads = [torch.zeros(len(patches), n_pos, n_heads, dtype=torch.bool) for _ in range(n_layers)]
    mlps = [torch.zeros(len(patches), n_pos, dtype=torch.bool) for _ in range(n_layers)]
    for i, patch in enumerate(patches):
        for name, positions in patch.items():
            c = parse_component(name)
            where = torch.ones(n_pos, dtype=torch.bool) if positions is None else positions
            if c.head is None:
                mlps[c.layer][i] |= where
            else:
                heads[c.layer][i, :, c.head] |= where
    return heads, mlps


def patch_hooks(source: Outputs, heads: list[Tensor], mlps: list[Tensor]) -> list[Hook]:
    hooks: list[Hook] = []
    for layer, (head_mask, mlp_mask) in enumerate(zip(heads, mlps, strict=True)):
        if head_mask.any():

            def patch_z(z: Tensor, hook: Any, m: Tensor = head_mask, layer: int = layer) -> Tensor:
                return torch.where(m[..., None], source.z[layer], z)

            hooks.append((Z_HOOK.format(layer=layer), patch_z))
        if mlp_mask.any():

            def patch_mlp(
                out: Tensor, hook: Any, m: Tensor = mlp_mask, layer: int = layer
            ) -> Tensor:
                return torch.where(m[..., None], source.mlp[layer], out)

            hooks.append((MLP_OUT_HOOK.format(layer=layer), patch_mlp))
    return hooks


@torch.no_grad()
def patched_metrics(
    bridge: Any,
    tokens: Int[Tensor, " n_pos"],
    source: Outputs,
    patches: Sequence[Patch],
    metric: Metric,
    *,
    batch_size: int = 64,
) -> Float[Tensor, " n_patches"]:
    """The metric of `tokens` with each patch applied alone (components take their output on
    the prompt `source` was recorded on)."""
    cfg = bridge.cfg
    out = []
    for lo in range(0, len(patches), batch_size):
        chunk = patches[lo : lo + batch_size]
        heads, mlps = _masks(chunk, cfg.n_layers, cfg.n_heads, len(tokens))
        logits = bridge.run_with_hooks(
            tokens[None].expand(len(chunk), -1), fwd_hooks=patch_hooks(source, heads, mlps)
        )
        out.append(torch.stack([metric(row) for row in logits]))
    return torch.cat(out) if out else torch.zeros(0)


def head_output(bridge: Any, layer: int, head: int, z: Tensor) -> Float[Tensor, "n_pos d_model"]:
    """What head (layer, head) writes to the residual stream given its z [n_pos, d_head]
    (without the attention output bias, which no patch changes)."""
    return z @ bridge.W_O[layer, head]


def output_change(
    bridge: Any, name: str, clean: Outputs, corrupt: Outputs
) -> Float[Tensor, "n_pos d_model"]:
    """What `name` (a component or EMBED) writes on the corrupted prompt minus on the clean one."""
    if name == "EMBED":
        return corrupt.embed - clean.embed
    c = parse_component(name)
    if c.head is None:
        return corrupt.mlp[c.layer] - clean.mlp[c.layer]
    dz = corrupt.z[c.layer][:, c.head] - clean.z[c.layer][:, c.head]
    return head_output(bridge, c.layer, c.head, dz)
