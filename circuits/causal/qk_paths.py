"""What a transcoder graph cannot see: components that act by moving later heads' attention.

The graph freezes every attention pattern, so a head that changes where a later head looks (an
S-inhibition head steering a name mover's query away from the subject) carries no edge in it,
and neither does an MLP that does the same. This measures those paths on the real model, one
sender at a time with everything else clean, as path patching does: the sender's output change
(corrupted minus clean) is added to the query and key inputs of every head that reads it, each
head's new pattern and output are computed exactly (softmax included), and the change of the
head's output is read against the gradient of the metric there (what follows the head, to first
order). Negated and divided by the clean-corrupt gap, each score estimates the share of the gap
that runs from the sender through the receiver's attention pattern.

While a sender's change is in the heads' query and key inputs, every head's output is pinned to
its clean value, so the residual stream stays clean and each head sees that sender's change
alone: one forward pass, one copy per sender, measures every path of a prompt.

The pattern is exact, unlike a gradient through the softmax (EAP), which saturates, or
integrated gradients over the embeddings (EAP-IG), which move every component at once. What
follows the receiver is read to first order: where the metric saturates there it
underestimates, and where it has zero slope (a compiled model's ReLU steps) it reads zero.
`python -m benchmarks.qk_paths` scores all three against QK-only path patching; the figures
are in docs/results.md.
"""

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm

from circuits.causal.naming import LOGITS, component_edges, parse_component, reads_before
from circuits.causal.patching import PromptRun, output_change, run_prompt
from circuits.causal.paths import QK_HOOKS, layer_head_input_hooks, split_qkv
from circuits.hooks import Z_HOOK
from circuits.tasks import PromptSet


def qk_path_scores(bridge: Any, prompt_set: PromptSet, *, batch_size: int = 64) -> dict[str, float]:
    """`"SENDER->LxHy"` -> signed share of the gap that the sender moves through head LxHy's
    query and key, over every sender (EMBED, heads, MLPs) that the head reads; empty when the
    corruption leaves the metric unchanged (no gap to share)."""
    cfg = bridge.cfg
    edges = [
        (s, r)
        for s, r in component_edges(cfg.n_layers, cfg.n_heads)
        if r != LOGITS and parse_component(r).is_head
    ]
    senders = sorted({s for s, _ in edges})
    row = {s: i for i, s in enumerate(senders)}
    receivers = [parse_component(r) for _, r in edges]
    # where each edge sits in a prompt's [n_senders, n_layers, n_heads] effects
    at = (
        torch.tensor([row[s] for s, _ in edges]),
        torch.tensor([c.layer for c in receivers]),
        torch.tensor([c.head for c in receivers]),
    )
    totals = torch.zeros(len(edges), dtype=torch.float64)
    gap = 0.0
    for prompt in tqdm(prompt_set.prompts, desc="QK paths", unit="prompt", leave=False):
        run = run_prompt(bridge, prompt_set, prompt)
        gap += run.m_clean - run.m_corrupt
        grads = head_output_gradients(bridge, run)  # [n_layers, n_pos, n_heads, d_head]
        # [n_senders, n_layers, n_heads]: -<g, dz> of every (sender, head), a chunk of senders
        # at a time (their moved outputs are as large as a batch of activations)
        effects = torch.cat(
            [
                -torch.einsum("lphd,slphd->slh", grads, moved_head_outputs(bridge, run, chunk))
                for chunk in _chunks(senders, batch_size)
            ]
        ).double()
        totals += effects[at]
    if gap == 0:
        return {}
    return {f"{s}->{r}": float(v) for (s, r), v in zip(edges, (totals / gap).tolist(), strict=True)}


def head_output_gradients(
    bridge: Any, run: PromptRun
) -> Float[Tensor, "n_layers n_pos n_heads d_head"]:
    """The gradient of the prompt's metric at every head's output `z` on the clean prompt."""
    cfg = bridge.cfg
    dtype = next(bridge.parameters()).dtype
    shape = (1, len(run.tokens), cfg.n_heads, cfg.d_head)
    probes = [torch.zeros(shape, dtype=dtype, requires_grad=True) for _ in range(cfg.n_layers)]

    def add_probe(z: Tensor, hook: Any) -> Tensor:
        return z + probes[_layer(hook)]

    hooks = [(Z_HOOK.format(layer=layer), add_probe) for layer in range(cfg.n_layers)]
    with torch.enable_grad():
        logits = bridge.run_with_hooks(run.tokens[None], fwd_hooks=hooks)
        grads = torch.autograd.grad(run.metric(logits[0]), probes, allow_unused=True)
    return torch.stack(
        [torch.zeros_like(p[0]) if g is None else g[0] for p, g in zip(probes, grads, strict=True)]
    )


@torch.no_grad()
def moved_head_outputs(
    bridge: Any, run: PromptRun, senders: list[str]
) -> Float[Tensor, "n_senders n_layers n_pos n_heads d_head"]:
    """For each sender, the change of every head's output `z` when that sender's output change
    is added to the query and key inputs of the heads that read it, everything else clean:
    what path patching sender -> head (query and key only) does to the head itself. Heads the
    sender does not reach get zero. One forward pass, one copy per sender."""
    cfg = bridge.cfg
    clean_z = run.clean.z
    changes = torch.stack([output_change(bridge, s, run.clean, run.corrupt) for s in senders])
    # [n_senders, n_layers]: whether the sender reaches the heads of each layer
    reaches = torch.tensor(
        [[reads_before(s, f"L{layer}H0") for layer in range(cfg.n_layers)] for s in senders]
    )
    moved: list[Tensor] = [torch.empty(0)] * cfg.n_layers

    def pin_clean(z: Tensor, hook: Any) -> Tensor:
        layer = _layer(hook)
        moved[layer] = z - clean_z[layer].to(z.dtype)
        return clean_z[layer].to(z.dtype).expand_as(z).contiguous()

    hooks = layer_head_input_hooks(reaches, changes, QK_HOOKS)
    hooks += [(Z_HOOK.format(layer=layer), pin_clean) for layer in range(cfg.n_layers)]
    with split_qkv(bridge):
        bridge.run_with_hooks(run.tokens[None].expand(len(senders), -1), fwd_hooks=hooks)
    return torch.stack(moved, 1)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[lo : lo + size] for lo in range(0, len(items), size)]


def _layer(hook: Any) -> int:
    """The layer of a `blocks.{layer}.…` hook."""
    return int(hook.name.split(".")[1])
