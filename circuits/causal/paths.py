"""Path patching: change what one component reads, and nothing else.

A path sender -> receiver is patched by adding the sender's output change (corrupted minus
clean) to the receiver's input only; everything downstream of the receiver is recomputed, so the
change reaches the metric through the receiver alone. Receivers:

- a head: its query, key and value inputs (the bridge's split q/k/v inputs, one copy of the
  residual stream per head);
- an MLP: added to the input of its norm (`ln2`), which only the MLP reads;
- LOGITS: added to the input of the final norm (the direct path to the metric).

The same injection points, fed with zero tensors that require gradients, give the gradient of
the metric at each receiver's input: what edge attribution patching multiplies the sender's
change by.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.causal.patching import EMBED_HOOK, Hook, Metric, Outputs, output_change
from circuits.components.naming import LOGITS, parse_component

QKV_HOOKS = (
    "blocks.{layer}.hook_q_input",
    "blocks.{layer}.hook_k_input",
    "blocks.{layer}.hook_v_input",
)
QK_HOOKS = QKV_HOOKS[:2]
"""A head's query and key inputs only: the paths through its attention pattern."""


@contextmanager
def split_qkv(bridge: Any) -> Iterator[None]:
    """Give every head its own copy of its query, key and value inputs while inside."""
    bridge.set_use_split_qkv_input(True)
    try:
        yield
    finally:
        bridge.set_use_split_qkv_input(False)


def injection_hooks(
    n_layers: int,
    injections: dict[str, Float[Tensor, "batch n_pos d_model"]],
    head_inputs: Sequence[str] = QKV_HOOKS,
) -> list[Hook]:
    """Hooks adding `injections[receiver]` to each receiver's input (see the module doc); a
    head receives it at `head_inputs` (default: query, key and value)."""
    residual: dict[str, list[Tensor]] = {}
    by_head: dict[int, dict[int, Tensor]] = {}
    for receiver, vector in injections.items():
        if receiver == LOGITS:
            residual.setdefault("ln_final.hook_in", []).append(vector)
            continue
        c = parse_component(receiver)
        if c.head is None:
            residual.setdefault(f"blocks.{c.layer}.ln2.hook_in", []).append(vector)
        else:
            by_head.setdefault(c.layer, {})[c.head] = vector
    hooks: list[Hook] = []
    for name, terms in residual.items():

        def add(x: Tensor, hook: Any, terms: list[Tensor] = terms) -> Tensor:
            return x + sum(terms)

        hooks.append((name, add))
    for layer, heads in by_head.items():

        def add_to_heads(x: Tensor, hook: Any, heads: dict[int, Tensor] = heads) -> Tensor:
            # x: [batch, n_pos, n_heads, d_model]
            extra = [
                heads[h] if h in heads else torch.zeros_like(x[:, :, 0]) for h in range(x.shape[2])
            ]
            return x + torch.stack(extra, 2)

        hooks += [(name.format(layer=layer), add_to_heads) for name in head_inputs]
    return hooks


@torch.no_grad()
def injected_metrics(
    bridge: Any,
    tokens: Int[Tensor, " n_pos"],
    injections: Sequence[dict[str, Float[Tensor, "n_pos d_model"]]],
    metric: Metric,
    *,
    batch_size: int = 64,
    head_inputs: Sequence[str] = QKV_HOOKS,
) -> Float[Tensor, " n_copies"]:
    """The metric of `tokens` with, in copy i, `injections[i][receiver]` added to the input of
    each receiver it names (a head's at `head_inputs`)."""
    d_model = bridge.cfg.d_model
    out = []
    with split_qkv(bridge):
        for lo in range(0, len(injections), batch_size):
            chunk = injections[lo : lo + batch_size]
            receivers = sorted({r for copy in chunk for r in copy})
            stacked = {
                r: torch.zeros(len(chunk), len(tokens), d_model, dtype=_dtype(bridge))
                for r in receivers
            }
            for i, copy in enumerate(chunk):
                for receiver, vector in copy.items():
                    stacked[receiver][i] = vector
            logits = bridge.run_with_hooks(
                tokens[None].expand(len(chunk), -1),
                fwd_hooks=injection_hooks(bridge.cfg.n_layers, stacked, head_inputs),
            )
            out.append(torch.stack([metric(row) for row in logits]))
    return torch.cat(out) if out else torch.zeros(0)


def path_patched_metrics(
    bridge: Any,
    tokens: Int[Tensor, " n_pos"],
    clean: Outputs,
    corrupt: Outputs,
    edges: Sequence[tuple[str, str]],
    metric: Metric,
    *,
    batch_size: int = 64,
) -> Float[Tensor, " n_edges"]:
    """The metric of the clean prompt with each (sender, receiver) path patched alone."""
    changes = {s: output_change(bridge, s, clean, corrupt) for s in {s for s, _ in edges}}
    injections = [{receiver: changes[sender]} for sender, receiver in edges]
    return injected_metrics(bridge, tokens, injections, metric, batch_size=batch_size)


def receiver_gradients(
    bridge: Any,
    tokens: Int[Tensor, " n_pos"],
    receivers: Sequence[str],
    metric: Metric,
    *,
    embeddings: Float[Tensor, "batch n_pos d_model"] | None = None,
    head_inputs: Sequence[str] = QKV_HOOKS,
) -> dict[str, Float[Tensor, "n_pos d_model"]]:
    """The gradient of the metric at each receiver's input on `tokens`, averaged over a batch
    whose token embeddings are `embeddings` (default: the prompt's own, batch of one); a head's
    input is the sum of what it reads at `head_inputs` (default: query, key and value)."""
    batch = 1 if embeddings is None else len(embeddings)
    d_model = bridge.cfg.d_model
    probes = {
        r: torch.zeros(batch, len(tokens), d_model, dtype=_dtype(bridge), requires_grad=True)
        for r in receivers
    }
    hooks = injection_hooks(bridge.cfg.n_layers, probes, head_inputs)
    if embeddings is not None:
        hooks.append((EMBED_HOOK, _replace(embeddings)))
    with torch.enable_grad(), split_qkv(bridge):
        logits = bridge.run_with_hooks(tokens[None].expand(batch, -1), fwd_hooks=hooks)
        total = torch.stack([metric(row) for row in logits]).sum()
        grads = torch.autograd.grad(total, list(probes.values()), allow_unused=True)
    return {
        r: (torch.zeros(len(tokens), d_model, dtype=_dtype(bridge)) if g is None else g.mean(0))
        for r, g in zip(probes, grads, strict=True)
    }


def _replace(value: Tensor) -> Callable[..., Tensor]:
    def hook(x: Tensor, hook: Any) -> Tensor:
        return value.to(x.dtype)

    return hook


def _dtype(bridge: Any) -> torch.dtype:
    return next(bridge.parameters()).dtype
