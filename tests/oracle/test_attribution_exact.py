"""The contract: on tiny random models in float64, every edge of the attribution graph is the
effect of an intervention on the frozen replacement model (remove the source, keep every other
node at its recorded value, read each target), and each node's incoming edges plus its constant
sum to its value."""

import pytest
import torch

from circuits.attribution.attribute import (
    AttributionConfig,
    attribute,
    removal_scales,
    row_values,
)
from circuits.attribution.replacement import ReplacementModel
from circuits.attribution.targets import logit_difference_target, top_logit_targets
from circuits.errors import AttributionError
from tests.oracle.architectures import (
    ARCHITECTURES,
    D_VOCAB,
    KINDS,
    assert_edges_equal_removals,
    random_bridge,
    random_transcoders,
)

N_POS = 10
RTOL = 1e-8


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("architectures")


def _prompt() -> torch.Tensor:
    return torch.randint(1, D_VOCAB, (N_POS,), generator=torch.Generator().manual_seed(1))


def _graph(bridge, tset):
    model = ReplacementModel(bridge, tset)
    tokens = _prompt()
    trace = model.trace(tokens)
    names = [f"t{i}" for i in range(D_VOCAB)]
    targets = top_logit_targets(trace.logits, names, max_count=3)
    targets.append(logit_difference_target(3, 4, D_VOCAB, name="t3 - t4", pos=-2))
    # a batch size that leaves a partial last block
    graph = attribute(model, tokens, targets, AttributionConfig(batch_size=7, progress=False))
    return model, trace, targets, graph


@pytest.mark.parametrize("skip", [False, True], ids=["no_skip", "skip"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_edge_equals_the_effect_of_removing_its_source(root, architecture, kind, skip):
    bridge = random_bridge(architecture, root)
    model, trace, targets, graph = _graph(bridge, random_transcoders(kind, skip=skip))
    index = graph.index
    assert index.n_features > 20, "the random transcoders should have active features"
    features = range(index.feature_start, index.target_start, 3)
    columns = [*range(index.feature_start), *features]  # every token and error, some features
    assert_edges_equal_removals(model, trace, graph, targets, columns, rtol=RTOL)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_incoming_edges_plus_constant_sum_to_each_nodes_value(root, architecture):
    bridge = random_bridge(architecture, root)
    _, trace, _, graph = _graph(bridge, random_transcoders("relu", skip=True))
    total = graph.incoming() + graph.row_constants
    torch.testing.assert_close(
        total, graph.row_values, rtol=RTOL, atol=RTOL * float(graph.row_values.abs().max())
    )
    # the values themselves are the recorded ones, not a replay artefact
    active = trace.features[0]
    torch.testing.assert_close(graph.row_values[: len(active)], active.pre, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_frozen_replay_reproduces_the_model(root, architecture):
    bridge = random_bridge(architecture, root)
    model = ReplacementModel(bridge, random_transcoders("topk", skip=False))
    tokens = _prompt()
    trace = model.trace(tokens)
    with torch.no_grad():
        native = bridge.run_with_cache(
            tokens[None], names_filter=lambda n: n == "unembed.hook_out"
        )[1]
        replay = model.replay(trace)
    torch.testing.assert_close(replay.logits[0], trace.logits, rtol=1e-12, atol=1e-12)
    # the frozen pass differs from the native one only by the adapters' norm precision
    torch.testing.assert_close(trace.logits, native["unembed.hook_out"][0], rtol=1e-6, atol=1e-6)


def test_models_whose_attention_cannot_be_frozen_are_refused(root):
    bridge = random_bridge("gptneo", root)
    with pytest.raises(AttributionError, match=r"GPTNeo.*cannot be frozen"):
        ReplacementModel(bridge, random_transcoders("relu", skip=False))


def test_attention_that_ignores_pattern_edits_is_refused_by_measurement(root, monkeypatch):
    """Not by name: every layer's pattern is edited and none reaches the output."""
    from circuits.attribution import replacement

    monkeypatch.setattr(replacement, "UNSUPPORTED_ARCHITECTURES", ())
    bridge = random_bridge("gptneo", root)
    with pytest.raises(AttributionError, match=r"GPTNeo.*cannot be frozen"):
        replacement.check_attention_is_frozen(bridge)


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_recursive_attribution_agrees_with_the_full_graph(root, architecture):
    from circuits.attribution.heads import resolve_heads
    from circuits.attribution.recursive import RecursiveConfig, attribute_recursive

    bridge = random_bridge(architecture, root)
    model, _, targets, full = _graph(bridge, random_transcoders("topk", skip=True))
    config = RecursiveConfig(max_depth=3, beam=4, threshold=0.0, batch_size=5)
    sub = attribute_recursive(model, _prompt(), targets, config)
    assert sub.index.n_nodes == full.index.n_nodes
    dense = full.dense_adjacency()
    n_expanded_rows = len(set(sub.edge_rows.tolist()))
    assert 0 < sub.edge_weights.numel() <= n_expanded_rows * config.beam
    assert n_expanded_rows > len(targets), "the expansion should reach features"
    torch.testing.assert_close(
        sub.edge_weights, dense[sub.edge_rows, sub.edge_cols], rtol=1e-10, atol=1e-12
    )
    # its edges come resolved by head, as `resolve_heads` does on the full graph
    assert sub.head_edges is not None and sub.head_shares is not None
    full_edge = {
        (r, c): i
        for i, (r, c) in enumerate(
            zip(full.edge_rows.tolist(), full.edge_cols.tolist(), strict=True)
        )
    }
    picked = torch.tensor(
        [
            full_edge[(r, c)]
            for r, c in zip(sub.edge_rows.tolist(), sub.edge_cols.tolist(), strict=True)
        ]
    )
    torch.testing.assert_close(
        sub.head_shares, resolve_heads(model, full, picked), rtol=1e-10, atol=1e-12
    )
    # each expanded row keeps its strongest inputs
    for row in set(sub.edge_rows.tolist()):
        kept = sub.edge_weights[sub.edge_rows == row].abs()
        assert kept.min() >= dense[row].abs().topk(config.beam).values.min() - 1e-12


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_head_shares_equal_the_edge_lost_when_the_head_is_pinned(root, architecture):
    from circuits.attribution.heads import resolve_heads
    from circuits.hooks import Z_HOOK

    bridge = random_bridge(architecture, root)
    model, trace, targets, graph = _graph(bridge, random_transcoders("relu", skip=False))
    index = graph.index
    picked = torch.randperm(len(graph.edge_rows), generator=torch.Generator().manual_seed(0))[:40]
    shares = resolve_heads(model, graph, picked, batch_size=16)
    n_heads = bridge.cfg.n_heads
    assert shares.shape == (len(picked), index.n_layers, n_heads)
    assert shares.abs().sum() > 0
    clean_z: dict[str, torch.Tensor] = {}

    def record(z, hook):
        clean_z[hook.name] = z
        return z

    with torch.no_grad():
        model.replay(
            trace, extra_hooks=[(Z_HOOK.format(layer=i), record) for i in range(index.n_layers)]
        )
    for layer in range(index.n_layers):
        for head in range(n_heads):

            def pin(z, hook, head=head):
                z = z.clone()
                z[:, :, head] = clean_z[hook.name][:, :, head]
                return z

            hooks = [(Z_HOOK.format(layer=layer), pin)]
            cols = graph.edge_cols[picked].tolist()
            with torch.no_grad():
                clean = model.replay(trace, extra_hooks=hooks)
                removed = model.replay(trace, removal_scales(trace, index, cols), extra_hooks=hooks)
            values = row_values(model, trace, targets, clean.mlp_in, clean.logits)[0]
            without = row_values(model, trace, targets, removed.mlp_in, removed.logits)
            rows = graph.edge_rows[picked] - index.feature_start
            pinned_edge = values[rows] - without[torch.arange(len(picked)), rows]
            expected = graph.edge_weights[picked] - pinned_edge
            torch.testing.assert_close(shares[:, layer, head], expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_moved_patterns_are_the_total_effect_of_each_heads_corrupted_pattern(root, architecture):
    from dataclasses import replace

    from circuits.attribution.heads import moved_patterns
    from circuits.attribution.influence import total_effects
    from circuits.hooks import PATTERN_HOOK

    bridge = random_bridge(architecture, root)
    model, trace, targets, graph = _graph(bridge, random_transcoders("relu", skip=False))
    index = graph.index
    corrupt_tokens = torch.randint(1, D_VOCAB, (N_POS,), generator=torch.Generator().manual_seed(2))
    moved = moved_patterns(model, graph, corrupt_tokens)
    corrupt = model.trace(corrupt_tokens)
    # the frozen replay (features at their recorded values) gives each row's direct change; the
    # rows' effects per unit carry it on to the target, as every path in the graph does
    _, per_unit = total_effects(graph)
    rows = per_unit[index.feature_start :]
    with torch.no_grad():
        clean = model.replay(trace)
        before = row_values(model, trace, targets, clean.mlp_in, clean.logits)[0]
        for layer in range(index.n_layers):
            name = PATTERN_HOOK.format(layer=layer)
            for head in range(bridge.cfg.n_heads):
                pattern = trace.frozen[name].clone()
                pattern[:, head] = corrupt.frozen[name][:, head]
                swapped = model.replay(replace(trace, frozen={**trace.frozen, name: pattern}))
                after = row_values(model, trace, targets, swapped.mlp_in, swapped.logits)[0]
                expected = ((before - after).double() * rows).sum()
                torch.testing.assert_close(moved[layer, head], expected, rtol=1e-6, atol=1e-9)
    assert moved.abs().sum() > 0
