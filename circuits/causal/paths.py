"""Path patching: change what one component reads, and nothing else.

A path sender -> receiver is patched by adding the sender's output change (corrupted minus
clean) to the receiver's input only; everything downstream of the receiver is recomputed, so the
change reaches the metric through the receiver alone. Receivers:

- a head: its query, key and value inputs (the bridge's split q/k/v inputs, one copy of the
  residual stream per head). Under grouped-query attention the heads of a group share one key
  and one value input, so `path_patched_metrics` adds the change to the inputs of every head of
  the receiver's layer and gives every head but the receiver its clean output back;
- an MLP: added to the input of its norm (`ln2`), which only the MLP reads;
- LOGITS: added to the input of the final norm (the direct path to the metric).

The same injection points, fed with zero tensors that require gradients, give the gradient of
the metric at each receiver's input: what edge attribution patching multiplies the sender's
change by. Those take one input per head, so they refuse a head's key or value input under
grouped-query attention (the gradient there is the whole group's).
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from circuits.causal.naming import LOGITS, parse_component
from circuits.causal.patching import Metric, Outputs, output_change
from circuits.hooks import FINAL_NORM_HOOK, MLP_NORM_HOOK, TOKEN_EMBED_HOOK, Z_HOOK, Hook

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
            residual.setdefault(FINAL_NORM_HOOK, []).append(vector)
            continue
        c = parse_component(receiver)
        if c.head is None:
            residual.setdefault(MLP_NORM_HOOK.format(layer=c.layer), []).append(vector)
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
def path_patched_metrics(
    bridge: Any,
    tokens: Int[Tensor, " n_pos"],
    clean: Outputs,
    corrupt: Outputs,
    edges: Sequence[tuple[str, str]],
    metric: Metric,
    *,
    batch_size: int = 64,
    head_inputs: Sequence[str] = QKV_HOOKS,
) -> Float[Tensor, " n_edges"]:
    """The metric of the clean prompt with each (sender, receiver) path patched alone; a head
    receives the sender's change at `head_inputs` (default: query, key and value). The change
    is added there for every head of the receiver's layer, and every other head of that layer
    keeps its clean output: the receiver alone sees it, whether or not it shares its key and
    value inputs with other heads."""
    cfg = bridge.cfg
    changes = {s: output_change(bridge, s, clean, corrupt) for s in {s for s, _ in edges}}
    out = []
    with split_qkv(bridge):
        for lo in range(0, len(edges), batch_size):
            chunk = edges[lo : lo + batch_size]
            n = len(chunk)
            residual: dict[str, Tensor] = {}
            at_heads = torch.zeros(n, len(tokens), cfg.d_model, dtype=_dtype(bridge))
            layers = torch.zeros(n, cfg.n_layers, dtype=torch.bool)
            kept = torch.ones(n, cfg.n_layers, cfg.n_heads, dtype=torch.bool)
            for i, (sender, receiver) in enumerate(chunk):
                c = None if receiver == LOGITS else parse_component(receiver)
                if c is not None and c.head is not None:
                    at_heads[i] = changes[sender]
                    layers[i, c.layer] = True
                    kept[i, c.layer] = False
                    kept[i, c.layer, c.head] = True
                else:
                    residual.setdefault(receiver, torch.zeros_like(at_heads))[i] = changes[sender]
            hooks = injection_hooks(cfg.n_layers, residual)
            hooks += layer_head_input_hooks(layers, at_heads, head_inputs)
            hooks += clean_head_hooks(kept, clean.z)
            logits = bridge.run_with_hooks(tokens[None].expand(n, -1), fwd_hooks=hooks)
            out.append(torch.stack([metric(row) for row in logits]))
    return torch.cat(out) if out else torch.zeros(0)


def layer_head_input_hooks(
    layers: Bool[Tensor, "batch n_layers"],
    changes: Float[Tensor, "batch n_pos d_model"],
    head_inputs: Sequence[str] = QKV_HOOKS,
) -> list[Hook]:
    """Hooks adding, in copy i, `changes[i]` to the `head_inputs` of every head of each layer
    that `layers[i]` marks (a shared key or value input of grouped-query attention included).
    Needs `split_qkv`."""
    hooks: list[Hook] = []
    for layer in range(layers.shape[1]):
        mask = layers[:, layer]
        if not mask.any():
            continue

        def add(x: Tensor, hook: Any, mask: Tensor = mask) -> Tensor:
            # x: [batch, n_pos, heads (or key/value groups), d_model]
            return x + mask[:, None, None, None].to(x.dtype) * changes[:, :, None, :].to(x.dtype)

        hooks += [(name.format(layer=layer), add) for name in head_inputs]
    return hooks


def clean_head_hooks(
    kept: Bool[Tensor, "batch n_layers n_heads"], clean_z: Sequence[Tensor]
) -> list[Hook]:
    """Hooks giving, in copy i, every head that `kept[i]` does not keep its clean output
    `clean_z[layer]` ([n_pos, n_heads, d_head])."""
    hooks: list[Hook] = []
    for layer in range(kept.shape[1]):
        keep = kept[:, layer]
        if keep.all():
            continue

        def restore(z: Tensor, hook: Any, keep: Tensor = keep, layer: int = layer) -> Tensor:
            return torch.where(keep[:, None, :, None], z, clean_z[layer].to(z.dtype)[None])

        hooks.append((Z_HOOK.format(layer=layer), restore))
    return hooks


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
    _refuse_shared_head_inputs(bridge, set(receivers), head_inputs)
    batch = 1 if embeddings is None else len(embeddings)
    d_model = bridge.cfg.d_model
    probes = {
        r: torch.zeros(batch, len(tokens), d_model, dtype=_dtype(bridge), requires_grad=True)
        for r in receivers
    }
    hooks = injection_hooks(bridge.cfg.n_layers, probes, head_inputs)
    if embeddings is not None:
        hooks.append((TOKEN_EMBED_HOOK, _replace(embeddings)))
    with torch.enable_grad(), split_qkv(bridge):
        logits = bridge.run_with_hooks(tokens[None].expand(batch, -1), fwd_hooks=hooks)
        total = torch.stack([metric(row) for row in logits]).sum()
        grads = torch.autograd.grad(total, list(probes.values()), allow_unused=True)
    return {
        r: (torch.zeros(len(tokens), d_model, dtype=_dtype(bridge)) if g is None else g.mean(0))
        for r, g in zip(probes, grads, strict=True)
    }


def _refuse_shared_head_inputs(
    bridge: Any, receivers: set[str], head_inputs: Sequence[str]
) -> None:
    """A gradient at one head's key or value input needs an input of its own, which
    grouped-query attention does not have."""
    cfg = bridge.cfg
    n_groups = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    shares = n_groups != cfg.n_heads and any(h in QKV_HOOKS[1:] for h in head_inputs)
    heads = sorted(r for r in receivers if r != LOGITS and parse_component(r).is_head)
    if shares and heads:
        raise ValueError(
            f"{heads[0]}: this model's heads share key and value inputs ({cfg.n_heads} heads, "
            f"{n_groups} key/value groups), so one head's cannot be changed or differentiated "
            "alone; patch paths with path_patched_metrics, or receive at the query alone"
        )


def _replace(value: Tensor) -> Callable[..., Tensor]:
    def hook(x: Tensor, hook: Any) -> Tensor:
        return value.to(x.dtype)

    return hook


def _dtype(bridge: Any) -> torch.dtype:
    return next(bridge.parameters()).dtype
