"""Feature descriptions of the shipped model's transcoders on its held-out corpus (skipped when
the corpus is not built here: `circuits corpus build`)."""

import pytest
import torch

from circuits.corpus.build import corpus_dir
from circuits.features import build_atlas
from circuits.zoo.registry import is_trained
from transcoders.corpus import corpus_config_for
from transcoders.errors import TranscoderError

pytestmark = [
    pytest.mark.skipif(not is_trained("tiny"), reason="shipped model missing"),
    pytest.mark.skipif(
        not (corpus_dir(corpus_config_for("zoo:tiny")) / "corpus.json").exists(),
        reason="the corpus of zoo:tiny is not built here (`circuits corpus build`)",
    ),
]


@pytest.fixture(scope="module")
def descriptions():
    from circuits.models import load_model
    from transcoders.corpus import load_corpus_tokens, window_length
    from transcoders.transcoder_set import default_transcoders_dir, load_transcoder_set

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    bridge = load_model("zoo:tiny")
    tset = load_transcoder_set(default_transcoders_dir("zoo:tiny"), bridge=bridge)
    try:
        corpus = load_corpus_tokens("zoo:tiny", bridge)
    except TranscoderError as err:  # a corpus built here from other text than tiny's
        torch.set_num_threads(threads)
        pytest.skip(f"the corpus built here is not the one zoo:tiny was trained on: {err}")
    atlas = build_atlas(
        bridge,
        tset,
        corpus.val,
        eot=corpus.eot,
        seq_len=window_length("zoo:tiny", bridge),
        n_tokens=4096,
        progress=False,
    )
    keys = [
        (layer, f) for layer in range(tset.n_layers) for f in range(tset[layer].config.d_transcoder)
    ]
    torch.set_num_threads(threads)
    return list(atlas.describe(keys).values())


def _next_is_promoted(descriptions) -> float:
    """Share of top contexts whose next token is the feature's top promoted token."""
    hits = [
        c.tokens[c.active + 1] == d.promoted[0][0]
        for d in descriptions
        for c in d.top_contexts
        if c.active + 1 < len(c.tokens)
    ]
    return sum(hits) / max(len(hits), 1)


def test_features_labelled_by_what_they_say_are_followed_by_it(descriptions) -> None:
    says = [d for d in descriptions if d.label.startswith("says ")]
    others = [d for d in descriptions if d.label.startswith("on ")]
    assert 0.02 < len(says) / len(descriptions) < 0.5
    # measured: 19-28% of their top contexts go on with the token, 4% for the other features
    assert _next_is_promoted(says) > 2.5 * _next_is_promoted(others)


def test_most_features_fire_on_the_scanned_text(descriptions) -> None:
    active = [d for d in descriptions if d.top_contexts]
    assert len(active) > 0.5 * len(descriptions)  # 64% on these 4064 tokens, 92% on 65k
    for d in active:
        assert d.max_activation == d.top_contexts[0].activation > 0
        assert d.top_contexts[0].tokens[d.top_contexts[0].active]
