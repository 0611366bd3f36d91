"""An edge circuit on the real model, as MIB evaluates one: every edge in the circuit carries its
sender's output on the clean prompt, every other edge its sender's output on the
counterfactual (corrupted) prompt.

MIB's `evaluate_graph` (github.com/hannamw/EAP-IG, `src/eap/evaluate.py`, commit 795f560, with
`intervention='patching'`) runs the clean prompt and adds, at the input of each receiver (a
head's query, key and value inputs, an MLP's input before its norm, the final residual stream
before the last norm), `corrupted output - current output` of every sender whose edge into that
receiver is outside the circuit; "current" is the sender's output in this same patched pass,
so a sender whose own inputs were corrupted passes that on along its circuit edges. This module
does the same on the bridge, one circuit per copy of the prompt:

    input_r = clean-run input_r + sum over senders s with (s, r) outside the circuit of
              (out_s(corrupted prompt) - out_s(this pass))

A head's output is its z times its W_O (without the output bias, which no patch changes);
EMBED's is the token embeddings (the positional ones are equal in paired prompts). With every
edge in the circuit the pass is the clean model; with none, every receiver reads only corrupted
outputs: the corrupted model.
"""

from collections.abc import Collection, Sequence
from typing import Any

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from circuits.causal.naming import EMBED, LOGITS, components, reads_before
from circuits.causal.patching import Outputs, PromptRun, head_output, run_prompt
from circuits.causal.paths import QKV_HOOKS, split_qkv
from circuits.hooks import FINAL_NORM_HOOK, MLP_NORM_HOOK, MLP_OUT_HOOK, Z_HOOK, Hook
from circuits.tasks import PromptSet

Edge = tuple[str, str]


def _node_lists(n_layers: int, n_heads: int) -> tuple[list[str], list[str]]:
    names = [c.name for c in components(n_layers, n_heads)]
    return [EMBED, *names], [*names, LOGITS]


def _corrupted_mask(
    circuits: Sequence[Collection[Edge]], senders: list[str], receivers: list[str]
) -> Float[Tensor, "batch n_senders n_receivers"]:
    """1 where the edge (sender, receiver) exists and is outside the copy's circuit."""
    s_index = {s: i for i, s in enumerate(senders)}
    r_index = {r: i for i, r in enumerate(receivers)}
    real = torch.tensor([[float(reads_before(s, r)) for r in receivers] for s in senders])
    inside = torch.zeros(len(circuits), len(senders), len(receivers))
    for i, circuit in enumerate(circuits):
        for s, r in circuit:
            if not reads_before(s, r):
                raise ValueError(f"edge {s}->{r}: {s} does not write to {r}'s input")
            inside[i, s_index[s], r_index[r]] = 1.0
    return real * (1.0 - inside)


def _corrupted_outputs(bridge: Any, corrupt: Outputs) -> Float[Tensor, "n_pos n_senders d_model"]:
    cfg = bridge.cfg
    outs = [corrupt.embed]
    for layer in range(cfg.n_layers):
        outs += [head_output(bridge, layer, h, corrupt.z[layer][:, h]) for h in range(cfg.n_heads)]
        outs.append(corrupt.mlp[layer])
    return torch.stack(outs, 1)


def _hooks(
    bridge: Any,
    clean_embed: Tensor,
    corrupted: Tensor,
    mask: Tensor,
    diff: Tensor,
) -> list[Hook]:
    """Hooks that record each sender's output change into `diff` [batch, n_pos, n_senders,
    d_model] (corrupted minus this pass) as it is computed, and add the masked changes to each
    receiver's input."""
    cfg = bridge.cfg
    n_heads = cfg.n_heads
    w_o = bridge.W_O  # [n_layers, n_heads, d_head, d_model]
    diff[:, :, 0] = (corrupted[:, 0] - clean_embed)[None]
    hooks: list[Hook] = []
    for layer in range(cfg.n_layers):
        first = 1 + layer * (n_heads + 1)  # index of the layer's first head among the senders
        heads = slice(first - 1, first - 1 + n_heads)  # ... and among the receivers

        def into_heads(x: Tensor, hook: Any, first: int = first, heads: slice = heads) -> Tensor:
            # x: [batch, n_pos, n_heads, d_model], one copy of the residual stream per head
            update = einsum(diff[:, :, :first], mask[:, :first, heads], "b p s d, b s h -> b p h d")
            return x + update.to(x.dtype)

        hooks += [(name.format(layer=layer), into_heads) for name in QKV_HOOKS]

        def record_heads(z: Tensor, hook: Any, first: int = first, layer: int = layer) -> Tensor:
            out = einsum(z, w_o[layer].to(z.dtype), "b p h e, h e d -> b p h d")
            diff[:, :, first : first + n_heads] = corrupted[None, :, first : first + n_heads] - out
            return z

        hooks.append((Z_HOOK.format(layer=layer), record_heads))
        mlp = first + n_heads  # the MLP's sender index; first - 1 + n_heads its receiver index

        def into_mlp(x: Tensor, hook: Any, mlp: int = mlp) -> Tensor:
            update = einsum(diff[:, :, :mlp], mask[:, :mlp, mlp - 1], "b p s d, b s -> b p d")
            return x + update.to(x.dtype)

        def record_mlp(out: Tensor, hook: Any, mlp: int = mlp) -> Tensor:
            diff[:, :, mlp] = corrupted[None, :, mlp] - out
            return out

        hooks += [
            (MLP_NORM_HOOK.format(layer=layer), into_mlp),
            (MLP_OUT_HOOK.format(layer=layer), record_mlp),
        ]

    def into_logits(x: Tensor, hook: Any) -> Tensor:
        return x + einsum(diff, mask[:, :, -1], "b p s d, b s -> b p d").to(x.dtype)

    hooks.append((FINAL_NORM_HOOK, into_logits))
    return hooks


@torch.no_grad()
def edge_circuit_metrics(
    bridge: Any,
    run: PromptRun,
    circuits: Sequence[Collection[Edge]],
    *,
    batch_size: int = 32,
) -> Float[Tensor, " n_circuits"]:
    """The metric of `run`'s clean prompt with each circuit (a set of (sender, receiver)
    component edges) kept and every other edge given its sender's corrupted output."""
    cfg = bridge.cfg
    n_groups = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    if n_groups != cfg.n_heads:
        raise ValueError(
            f"{cfg.n_heads} heads share {n_groups} key/value inputs: an edge into one head's "
            "key or value input needs the heads ungrouped (MIB's ungroup_grouped_query_attention)"
            ", which the bridge does not do; evaluate edge circuits on models without GQA"
        )
    senders, receivers = _node_lists(cfg.n_layers, cfg.n_heads)
    dtype = run.clean.embed.dtype
    corrupted = _corrupted_outputs(bridge, run.corrupt)
    n_pos = len(run.tokens)
    out = []
    with split_qkv(bridge):
        for lo in range(0, len(circuits), batch_size):
            chunk = circuits[lo : lo + batch_size]
            mask = _corrupted_mask(chunk, senders, receivers).to(dtype)
            diff = torch.zeros(len(chunk), n_pos, len(senders), cfg.d_model, dtype=dtype)
            hooks = _hooks(bridge, run.clean.embed, corrupted, mask, diff)
            logits = bridge.run_with_hooks(run.tokens[None].expand(len(chunk), -1), fwd_hooks=hooks)
            out.append(torch.stack([run.metric(row) for row in logits]))
    return torch.cat(out) if out else torch.zeros(0)


def mean_edge_circuit_metrics(
    bridge: Any, prompt_set: PromptSet, circuits: Sequence[Collection[Edge]]
) -> tuple[float, float, list[float]]:
    """Means over the prompts of the clean metric, the corrupted metric and each circuit's
    metric; MIB's faithfulness divides these means (not per-prompt ratios)."""
    sums = torch.zeros(len(circuits), dtype=torch.float64)
    clean = corrupt = 0.0
    for prompt in prompt_set.prompts:
        run = run_prompt(bridge, prompt_set, prompt)
        clean += run.m_clean
        corrupt += run.m_corrupt
        sums += edge_circuit_metrics(bridge, run, circuits).double()
    n = len(prompt_set.prompts)
    return clean / n, corrupt / n, (sums / n).tolist()
