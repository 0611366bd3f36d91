"""Path patching into a head, and the QK paths' moved head outputs, on every supported
architecture in float64, against a two-pass patch that needs no pinning: first the receiver's
output with the sender's change in its own query and in its key/value group's inputs, then the
clean run with that output alone swapped in. Under grouped-query attention (llama, gemma2) heads
share key and value inputs, which is what the pinning in `path_patched_metrics` is for."""

import pytest
import torch

from circuits.causal.naming import EMBED, components, parse_component, reads_before
from circuits.causal.patching import PromptRun, output_change, record_run
from circuits.causal.paths import (
    QK_HOOKS,
    QKV_HOOKS,
    path_patched_metrics,
    receiver_gradients,
    split_qkv,
)
from circuits.causal.qk_paths import moved_head_outputs
from circuits.hooks import Z_HOOK
from tests.oracle.architectures import ARCHITECTURES, D_VOCAB, random_bridge

N_POS = 10


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("architectures")


def _run(bridge) -> PromptRun:
    tokens = torch.randint(1, D_VOCAB, (N_POS,), generator=torch.Generator().manual_seed(1))
    corrupt = torch.randint(1, D_VOCAB, (N_POS,), generator=torch.Generator().manual_seed(2))
    clean, clean_logits = record_run(bridge, tokens)
    bad, bad_logits = record_run(bridge, corrupt)

    def metric(logits):
        return logits[-1, 3] - logits[-1, 5]

    return PromptRun(
        tokens, corrupt, metric, clean, bad, float(metric(clean_logits)), float(metric(bad_logits))
    )


def _receiver_output(bridge, run, sender, receiver, head_inputs):
    """Pass one: the receiver's z with the sender's change in its own query input and in its
    group's key and value inputs (indexed by group where the model groups them)."""
    c = parse_component(receiver)
    change = output_change(bridge, sender, run.clean, run.corrupt)
    captured = {}

    def add(x, hook):
        n_inputs = x.shape[2]
        index = c.head // (bridge.cfg.n_heads // n_inputs)
        x = x.clone()
        x[0, :, index] += change
        return x

    def keep(z, hook):
        captured["z"] = z[0, :, c.head].clone()
        return z

    hooks = [(name.format(layer=c.layer), add) for name in head_inputs]
    hooks.append((Z_HOOK.format(layer=c.layer), keep))
    with torch.no_grad(), split_qkv(bridge):
        bridge.run_with_hooks(run.tokens[None], fwd_hooks=hooks)
    return captured["z"]


def _swapped_metric(bridge, run, receiver, z_head):
    """Pass two: the clean run with the receiver's output alone replaced."""
    c = parse_component(receiver)

    def swap(z, hook):
        z = z.clone()
        z[0, :, c.head] = z_head
        return z

    with torch.no_grad():
        logits = bridge.run_with_hooks(
            run.tokens[None], fwd_hooks=[(Z_HOOK.format(layer=c.layer), swap)]
        )
    return run.metric(logits[0])


def _paths_into_heads(bridge):
    cfg = bridge.cfg
    senders = [EMBED] + [c.name for c in components(cfg.n_layers, cfg.n_heads)]
    heads = [c.name for c in components(cfg.n_layers, cfg.n_heads) if c.is_head]
    return [(s, r) for s in senders for r in heads if reads_before(s, r)]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("head_inputs", [QKV_HOOKS, QK_HOOKS], ids=["qkv", "qk"])
def test_path_patching_into_a_head_is_the_two_pass_patch(root, architecture, head_inputs):
    bridge = random_bridge(architecture, root)
    run = _run(bridge)
    edges = _paths_into_heads(bridge)
    patched = path_patched_metrics(
        bridge,
        run.tokens,
        run.clean,
        run.corrupt,
        edges,
        run.metric,
        batch_size=5,
        head_inputs=head_inputs,
    )
    expected = torch.stack(
        [
            _swapped_metric(bridge, run, r, _receiver_output(bridge, run, s, r, head_inputs))
            for s, r in edges
        ]
    )
    torch.testing.assert_close(patched, expected, rtol=1e-8, atol=1e-10)
    assert (patched - run.m_clean).abs().max() > 1e-6  # the paths do something
    assert not patched.requires_grad  # no autograd graph kept per copy (memory)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_moved_head_outputs_are_the_first_pass(root, architecture):
    bridge = random_bridge(architecture, root)
    run = _run(bridge)
    edges = _paths_into_heads(bridge)
    senders = sorted({s for s, _ in edges})
    moved = moved_head_outputs(bridge, run, senders)
    for s, r in edges:
        c = parse_component(r)
        expected = _receiver_output(bridge, run, s, r, QK_HOOKS) - run.clean.z[c.layer][:, c.head]
        got = moved[senders.index(s), c.layer, :, c.head]
        torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-12)
    assert moved.abs().max() > 1e-6


@pytest.mark.parametrize("architecture", ["llama", "gemma2"])
def test_gradients_at_a_shared_key_input_are_refused(root, architecture):
    bridge = random_bridge(architecture, root)
    run = _run(bridge)
    with pytest.raises(ValueError, match="share key and value inputs"):
        receiver_gradients(bridge, run.tokens, ["L1H1"], run.metric)
    # at the query alone each head has its own input
    grads = receiver_gradients(bridge, run.tokens, ["L1H1"], run.metric, head_inputs=QK_HOOKS[:1])
    assert grads["L1H1"].abs().max() > 0
