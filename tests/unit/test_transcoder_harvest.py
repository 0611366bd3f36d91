"""Harvesting MLP activations: the right hooks, every layer, a seeded and resumable stream."""

import numpy as np
import pytest
import torch

from tests import builders
from tests.builders import tiny_harvest
from transcoders.harvest import (
    activation_batches,
    canonical_mlp_hooks,
    draw_windows,
    harvest,
    harvest_chunk,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_hooks_are_canonical_names_one_pair_per_layer(tiny_bridge) -> None:
    hooks = canonical_mlp_hooks(tiny_bridge)
    assert [h.layer for h in hooks] == [0, 1]
    for h in hooks:
        for name in (h.hook_in, h.hook_out):
            assert tiny_bridge.hook_dict[name].name == name  # not an alias


def test_harvest_matches_the_cache_without_position_zero(tiny_bridge, small_tokens) -> None:
    ids = torch.from_numpy(small_tokens.train[:64].astype(np.int64)).reshape(2, 32)
    acts = harvest(tiny_bridge, ids)
    _, cache = tiny_bridge.run_with_cache(ids)
    for layer in range(2):
        expected_in = cache[f"blocks.{layer}.ln2.hook_out"][:, 1:].reshape(-1, builders.D_MODEL)
        expected_out = cache[f"blocks.{layer}.hook_mlp_out"][:, 1:].reshape(-1, builders.D_MODEL)
        torch.testing.assert_close(acts.mlp_in[:, layer], expected_in, rtol=0, atol=0)
        torch.testing.assert_close(acts.mlp_out[:, layer], expected_out, rtol=0, atol=0)
    with_bos = harvest(tiny_bridge, ids, include_bos=True)
    assert with_bos.mlp_in.shape == (64, 2, builders.D_MODEL)


def test_harvest_leaves_no_hooks_behind(tiny_bridge, small_tokens) -> None:
    ids = torch.from_numpy(small_tokens.train[:32].astype(np.int64))[None]
    with torch.no_grad():
        before = tiny_bridge(ids)
        harvest(tiny_bridge, ids)
        after = tiny_bridge(ids)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_windows_open_with_the_end_of_text_token(small_tokens) -> None:
    from circuits.zoo.train import document_starts

    starts = document_starts(small_tokens.train, small_tokens.eot, 32)
    windows = draw_windows(small_tokens.train, starts, 50, 32, np.random.default_rng(0))
    assert windows.shape == (50, 32)
    assert (windows[:, 0] == small_tokens.eot).all()


def test_chunks_are_a_function_of_seed_and_index(tiny_bridge, small_tokens) -> None:
    from circuits.zoo.train import document_starts

    config = tiny_harvest()
    starts = document_starts(small_tokens.train, small_tokens.eot, config.seq_len)
    a = harvest_chunk(tiny_bridge, small_tokens.train, starts, config, 3)
    b = harvest_chunk(tiny_bridge, small_tokens.train, starts, config, 3)
    assert a.mlp_in.shape == (config.buffer_tokens, 2, builders.D_MODEL)
    torch.testing.assert_close(a.mlp_out, b.mlp_out, rtol=0, atol=0)
    other = harvest_chunk(tiny_bridge, small_tokens.train, starts, tiny_harvest(seed=1), 3)
    assert not torch.equal(a.mlp_out, other.mlp_out)


def test_stream_resumed_at_a_batch_continues_it_exactly(tiny_bridge, small_tokens) -> None:
    config = tiny_harvest()
    kwargs = {"batch_size": 200, "eot": small_tokens.eot}
    stream = activation_batches(tiny_bridge, small_tokens.train, config, **kwargs)
    head = [next(stream) for _ in range(8)]  # 5 batches per chunk: crosses a chunk boundary
    resumed = activation_batches(tiny_bridge, small_tokens.train, config, start=3, **kwargs)
    for expected in head[3:]:
        got = next(resumed)
        torch.testing.assert_close(got.mlp_in, expected.mlp_in, rtol=0, atol=0)
        torch.testing.assert_close(got.mlp_out, expected.mlp_out, rtol=0, atol=0)


def test_chunks_are_shuffled_across_windows(tiny_bridge, small_tokens) -> None:
    from circuits.zoo.train import document_starts

    config = tiny_harvest()
    starts = document_starts(small_tokens.train, small_tokens.eot, config.seq_len)
    chunk = harvest_chunk(tiny_bridge, small_tokens.train, starts, config, 0)
    rng = np.random.default_rng([config.seed, 0])  # the windows chunk 0 draws, in order
    windows = draw_windows(
        small_tokens.train, starts, config.windows_per_chunk, config.seq_len, rng
    )
    in_order = harvest(tiny_bridge, windows).mlp_out.flatten(1)
    source = torch.cdist(chunk.mlp_out.flatten(1), in_order).argmin(-1)  # row of each chunk row
    torch.testing.assert_close(chunk.mlp_out.flatten(1), in_order[source], rtol=1e-5, atol=1e-5)
    first_batch_windows = set((source[:64] // config.rows_per_window).tolist())
    assert len(first_batch_windows) > 16  # in order, 64 rows would come from 3 windows


def test_windows_are_as_long_as_the_model_was_trained_on(tiny_bridge) -> None:
    from types import SimpleNamespace

    from circuits.zoo.registry import zoo_model
    from transcoders.corpus import window_length

    long_context = SimpleNamespace(cfg=SimpleNamespace(n_ctx=1024))
    assert window_length("zoo:tiny", long_context) == zoo_model("tiny").train.seq_len
    assert window_length("some/model", long_context) == 256
    assert window_length("some/model", tiny_bridge) == builders.N_CTX


def test_corpus_is_never_built_behind_the_users_back(tiny_bridge, tmp_path, monkeypatch) -> None:
    from transcoders.corpus import load_corpus_tokens
    from transcoders.errors import TranscoderError

    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path))
    with pytest.raises(TranscoderError, match="circuits corpus build"):
        load_corpus_tokens("zoo:tiny", tiny_bridge)
    assert not any(tmp_path.iterdir())


def test_corpus_of_another_tokenizer_is_refused(small_tokens, small_cache, monkeypatch) -> None:
    from types import SimpleNamespace

    from tests.conftest import SMALL_CORPUS
    from transcoders.corpus import load_corpus_tokens
    from transcoders.errors import TranscoderError

    monkeypatch.setenv("CIRCUITS_CACHE", str(small_cache))
    monkeypatch.setattr("transcoders.corpus.corpus_config_for", lambda spec: SMALL_CORPUS)
    other = SimpleNamespace(tokenizer=SimpleNamespace(get_vocab=lambda: {"a": 0}))
    with pytest.raises(TranscoderError, match="not the corpus tokenizer"):
        load_corpus_tokens("some/model", other)
