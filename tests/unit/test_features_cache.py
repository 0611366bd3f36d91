"""The feature atlas cache: an exact round trip, rebuilt when the transcoder set changes or the
cached files cannot be read."""

import json
import logging

import pytest
import torch

from circuits.features import load_or_build_atlas
from circuits.features.cache import ATLAS_JSON, SCAN_FILE
from tests.oracle.architectures import random_bridge, random_transcoders
from tests.unit.test_features import EOT, document_tokens
from transcoders.corpus import CorpusTokens
from transcoders.transcoder_set import load_transcoder_set, save_transcoder_set

N_TOKENS, TOP_K = 240, 4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("cache-models")


@pytest.fixture(scope="module")
def bridge(models):
    return random_bridge("gpt2", models)


@pytest.fixture(scope="module")
def spec(models, bridge) -> str:
    """The model's spec: its directory (random_bridge saves it under the architecture)."""
    return str(models / "gpt2")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tset_dir(tmp_path):
    path = tmp_path / "transcoders"
    save_transcoder_set(random_transcoders("topk", skip=False, d_transcoder=32), path)
    return path


@pytest.fixture
def corpus() -> CorpusTokens:
    tokens = document_tokens()
    return CorpusTokens(train=tokens, val=tokens, eot=EOT)


def _load(spec, bridge, tset_dir, corpus, **kw):
    tset = load_transcoder_set(tset_dir, bridge=bridge)
    return load_or_build_atlas(
        spec, bridge, tset, tset_dir, n_tokens=N_TOKENS, top_k=TOP_K, progress=False,
        corpus=corpus, **kw,
    )  # fmt: skip


def _no_build(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the atlas was built, not loaded from the cache")

    monkeypatch.setattr("circuits.features.cache.build_atlas", refuse)


def test_cached_atlas_round_trips_exactly(
    spec, bridge, tset_dir, corpus, cache, monkeypatch
) -> None:
    built = _load(spec, bridge, tset_dir, corpus)
    assert built.path is not None and built.path.parent == cache / "features"
    _no_build(monkeypatch)
    loaded = _load(spec, bridge, tset_dir, corpus)
    assert loaded.path == built.path
    assert loaded.scan.settings == built.scan.settings
    assert loaded.scan.seconds == built.scan.seconds
    assert torch.equal(loaded.scan.windows, built.scan.windows)
    for mine, theirs in zip(loaded.scan.layers, built.scan.layers, strict=True):
        assert torch.equal(mine.top_values, theirs.top_values)
        assert torch.equal(mine.top_rows, theirs.top_rows)
        assert torch.equal(mine.n_active, theirs.n_active)
    keys = [(layer, f) for layer in range(2) for f in range(32)]
    assert loaded.describe(keys) == built.describe(keys)


def test_cache_is_small_and_names_its_kind(spec, bridge, tset_dir, corpus, cache) -> None:
    atlas = _load(spec, bridge, tset_dir, corpus)
    assert atlas.path is not None
    meta = json.loads((atlas.path / ATLAS_JSON).read_text())
    assert meta["kind"] == "feature_atlas" and meta["schema_version"] == 1
    assert meta["settings"] == {"n_tokens": N_TOKENS, "top_k": TOP_K, "seq_len": 24}
    assert (atlas.path / SCAN_FILE).stat().st_size < 10_000


def test_changed_transcoder_weights_rebuild_the_atlas(
    spec, bridge, tset_dir, corpus, cache
) -> None:
    first = _load(spec, bridge, tset_dir, corpus)
    retrained = random_transcoders("topk", skip=False, d_transcoder=32, seed=1)
    save_transcoder_set(retrained, tset_dir)
    second = _load(spec, bridge, tset_dir, corpus)
    assert second.path != first.path
    assert not torch.equal(second.scan.layers[0].top_values, first.scan.layers[0].top_values)


def test_other_settings_get_their_own_atlas(spec, bridge, tset_dir, corpus, cache) -> None:
    first = _load(spec, bridge, tset_dir, corpus)
    tset = load_transcoder_set(tset_dir, bridge=bridge)
    other = load_or_build_atlas(
        spec, bridge, tset, tset_dir, n_tokens=N_TOKENS, top_k=2, progress=False,
        corpus=corpus,
    )  # fmt: skip
    assert other.path != first.path and other.scan.layers[0].top_values.shape[1] == 2


@pytest.mark.parametrize("damage", ["truncated weights", "older schema", "no settings"])
def test_unreadable_cache_is_rebuilt_with_a_warning(
    spec, bridge, tset_dir, corpus, cache, caplog, damage
) -> None:
    atlas = _load(spec, bridge, tset_dir, corpus)
    assert atlas.path is not None
    meta_file, scan_file = atlas.path / ATLAS_JSON, atlas.path / SCAN_FILE
    meta = json.loads(meta_file.read_text())
    if damage == "truncated weights":
        scan_file.write_bytes(scan_file.read_bytes()[:100])
    elif damage == "older schema":
        meta_file.write_text(json.dumps(meta | {"schema_version": 0}))
    else:
        del meta["settings"]
        meta_file.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="circuits.features.cache"):
        rebuilt = _load(spec, bridge, tset_dir, corpus)
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    assert rebuilt.path == atlas.path
    assert torch.equal(rebuilt.scan.layers[1].top_values, atlas.scan.layers[1].top_values)
    assert json.loads(meta_file.read_text())["schema_version"] == 1


def test_rebuild_scans_again(spec, bridge, tset_dir, corpus, cache, monkeypatch) -> None:
    _load(spec, bridge, tset_dir, corpus)
    _no_build(monkeypatch)
    with pytest.raises(AssertionError, match="was built"):
        _load(spec, bridge, tset_dir, corpus, rebuild=True)
