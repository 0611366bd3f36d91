"""Ground-truth circuits of compiled models, read off tracr's own weights and graph.

tracr gives every RASP variable its own residual directions (labelled `name` for numerical
SOps, `name:value` for categorical ones). A component writes a variable when its output weights
have a non-zero column in that variable's directions and reads it when its input weights have a
non-zero row there; nothing here is typed by hand. Components are GPT-2's: heads `L{layer}H{head}`
and MLPs `MLP{layer}`, plus `EMBED` (writes tokens, indices and tracr's constant `one`) and
`LOGITS` (reads the program's output variable).
"""

import numpy as np

EMBED, LOGITS = "EMBED", "LOGITS"


def variable_of(label: str) -> str:
    """The RASP variable of a residual label (`tokens:x` -> `tokens`, `frac_prevs_1` itself)."""
    return label.split(":", 1)[0]


def variables_where(mask: np.ndarray, labels: list[str]) -> list[str]:
    """The variables whose residual directions have a True in `mask` (one entry per label)."""
    return sorted({variable_of(label) for label, hit in zip(labels, mask, strict=True) if hit})


def component_io(model) -> dict[str, dict[str, list[str]]]:
    """For every head and MLP that does anything: the variables it reads and writes.

    Heads record their query, key and value reads separately (`reads` is their union).
    """
    labels, params, cfg = model.residual_labels, model.params, model.model_config
    ks, io = cfg.key_size, {}
    nz = lambda w, axis: np.abs(np.asarray(w)).sum(axis=axis) > 0  # noqa: E731
    for layer in range(cfg.num_layers):
        attn = f"transformer/layer_{layer}/attn"
        for head in range(cfg.num_heads):
            cols = slice(head * ks, (head + 1) * ks)
            reads = {
                role: variables_where(nz(params[f"{attn}/{role}"]["w"][:, cols], 1), labels)
                for role in ("query", "key", "value")
            }
            writes = variables_where(nz(params[f"{attn}/linear"]["w"][cols], 0), labels)
            if writes:
                union = sorted(set().union(*reads.values()))
                io[f"L{layer}H{head}"] = {"reads": union, **reads, "writes": writes}
        mlp = f"transformer/layer_{layer}/mlp"
        writes = variables_where(nz(params[f"{mlp}/linear_2"]["w"], 0), labels)
        if writes:
            reads = variables_where(nz(params[f"{mlp}/linear_1"]["w"], 1), labels)
            io[f"MLP{layer}"] = {"reads": reads, "writes": writes}
    return io


def component_order(name: str) -> tuple[int, int, int]:
    """Sort key in forward order: EMBED, L0 heads, MLP0, L1 heads, ..., LOGITS."""
    if name == EMBED:
        return (-1, 0, 0)
    if name == LOGITS:
        return (10**9, 0, 0)
    if name.startswith("MLP"):
        return (int(name[3:]), 1, 0)
    layer, head = name[1:].split("H")
    return (int(layer), 0, int(head))


def circuit(io: dict, output: str) -> dict:
    """Writers and readers of every variable, component edges, and the circuit: the components
    on some path from EMBED to LOGITS, with the edges among them."""
    writers: dict[str, list[str]] = {v: [EMBED] for v in ("tokens", "indices", "one")}
    for name, rw in io.items():
        for var in rw["writes"]:
            writers.setdefault(var, []).append(name)
    readers_of = dict(io) | {LOGITS: {"reads": [output]}}
    edges = set()
    for receiver, rw in readers_of.items():
        for var in rw["reads"]:
            for sender in writers.get(var, []):
                # A later writer cannot feed an earlier reader, and a component that reads a
                # variable and writes to it (tracr's selector-width MLP cleans up its own
                # scratch direction) is not an edge.
                if component_order(sender) < component_order(receiver):
                    edges.add((sender, receiver))
    forward, backward = _reachable(edges, EMBED, 0), _reachable(edges, LOGITS, 1)
    on_path = forward & backward
    kept = sorted((e for e in edges if e[0] in on_path and e[1] in on_path), key=_edge_key)
    readers: dict[str, list[str]] = {}
    for receiver, rw in readers_of.items():
        for var in rw["reads"]:
            readers.setdefault(var, []).append(receiver)
    return {
        "writers": writers,
        "readers": {v: sorted(r, key=component_order) for v, r in readers.items()},
        "all_edges": [f"{s}->{r}" for s, r in sorted(edges, key=_edge_key)],
        "nodes": sorted(on_path - {EMBED, LOGITS}, key=component_order),
        "edges": [f"{s}->{r}" for s, r in kept],
    }


def _edge_key(edge: tuple[str, str]) -> tuple:
    return (component_order(edge[0]), component_order(edge[1]))


def _reachable(edges: set[tuple[str, str]], start: str, direction: int) -> set[str]:
    """Nodes reachable from `start` along edges (direction 0) or against them (1)."""
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for edge in edges:
            if edge[direction] == node and edge[1 - direction] not in seen:
                seen.add(edge[1 - direction])
                todo.append(edge[1 - direction])
    return seen


def rasp_variables(program) -> dict[str, dict]:
    """Every SOp of the program: its expression type, encoding and the SOps it is computed
    from (selectors are expanded to their keys and queries)."""
    from tracr.rasp import rasp

    out: dict[str, dict] = {}
    todo = [program]
    while todo:
        expr = todo.pop()
        if expr.label in out or not isinstance(expr, rasp.SOp):
            continue
        parents = _sop_parents(expr)
        out[expr.label] = {
            "expr": type(expr).__name__,
            "encoding": rasp.get_encoding(expr).value,
            "inputs": sorted({p.label for p in parents}),
        }
        todo.extend(parents)
    return out


def _sop_parents(expr) -> list:
    """The SOps an SOp is computed from, looking through selectors."""
    from tracr.rasp import rasp

    parents = []
    for child in expr.children:
        if isinstance(child, rasp.Selector):
            parents.extend(_sop_parents(child))
        else:
            parents.append(child)
    return parents
