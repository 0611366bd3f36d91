"""Worker threads in the attribution engine: the same graph on any number of them, torch's own
thread settings restored after each call."""

import sys

import pytest
import torch

from circuits.attribution.attribute import AttributionConfig, attribute
from circuits.attribution.recursive import RecursiveConfig, attribute_recursive
from circuits.attribution.replacement import ReplacementModel
from circuits.attribution.targets import logit_difference_target
from circuits.attribution.threads import engine_threads, ordered_map
from tests.oracle.architectures import D_VOCAB, random_bridge, random_transcoders


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    bridge = random_bridge("gpt2", tmp_path_factory.mktemp("models"))
    return ReplacementModel(bridge, random_transcoders("topk", skip=True))


TOKENS = torch.tensor([0, 5, 9, 5, 3, 2, 7, 1, 4, 5, 9, 8])
TARGETS = [logit_difference_target(5, 9, D_VOCAB, name="t5 - t9")]


@pytest.mark.parametrize("max_edges_per_row", [None, 3])
def test_full_graph_is_the_same_on_one_and_three_threads(model, max_edges_per_row) -> None:
    graphs = [
        attribute(
            model,
            TOKENS,
            TARGETS,
            AttributionConfig(
                batch_size=5, max_edges_per_row=max_edges_per_row, progress=False, threads=n
            ),
        )
        for n in (1, 3)
    ]
    for name in ("edge_rows", "edge_cols", "edge_weights"):
        assert torch.equal(getattr(graphs[0], name), getattr(graphs[1], name)), name


def test_recursive_graph_is_the_same_on_one_and_two_threads(model) -> None:
    graphs = [
        attribute_recursive(
            model, TOKENS, TARGETS, RecursiveConfig(batch_size=3, heads=False, threads=n)
        )
        for n in (1, 2)
    ]
    for name in ("edge_rows", "edge_cols", "edge_weights"):
        assert torch.equal(getattr(graphs[0], name), getattr(graphs[1], name)), name


def test_torch_threads_and_switch_interval_are_restored_after_a_call(model) -> None:
    threads, interval = torch.get_num_threads(), sys.getswitchinterval()
    attribute(model, TOKENS, TARGETS, AttributionConfig(progress=False, threads=2))
    assert torch.get_num_threads() == threads
    assert sys.getswitchinterval() == interval


def test_engine_threads_turns_intra_op_threads_off_and_defaults_to_torchs_count() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with engine_threads() as workers:
            assert workers == 2
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_ordered_map_keeps_the_order_of_its_items() -> None:
    assert list(ordered_map(lambda x: x * x, range(20), 3)) == [x * x for x in range(20)]


def test_zero_threads_are_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        AttributionConfig(threads=0)
    with pytest.raises(ValueError, match="threads"):
        RecursiveConfig(threads=0)
