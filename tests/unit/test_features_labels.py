"""Feature labels: what the feature says when one token stands out, else what it fires on."""

from circuits.features.description import MAX_LABEL_CHARS
from circuits.features.labels import STANDOUT_GAP, feature_label, quote_token


def test_a_standout_promoted_token_names_the_feature() -> None:
    label = feature_label(promoted=" Mary", gap=STANDOUT_GAP + 0.1, active_tokens=[" gave"] * 3)
    assert label == 'says " Mary"'


def test_without_a_standout_token_the_commonest_active_token_names_it() -> None:
    tokens = [" to", " gave", " gave", " the", " gave"]
    label = feature_label(promoted=" Mary", gap=STANDOUT_GAP - 0.1, active_tokens=tokens)
    assert label == 'on " gave"'


def test_a_tie_goes_to_the_token_of_the_stronger_context() -> None:
    tokens = [" to", " gave", " gave", " to"]
    assert feature_label(promoted="x", gap=0.0, active_tokens=tokens) == 'on " to"'


def test_a_feature_never_seen_active_is_named_by_its_decoder_with_a_doubt() -> None:
    assert feature_label(promoted=" Mary", gap=0.0, active_tokens=[]) == 'says " Mary"?'


def test_long_tokens_are_cut_to_fit_the_label() -> None:
    long = " " + "x" * 60
    for label in (
        feature_label(promoted=long, gap=9.0, active_tokens=["a"]),
        feature_label(promoted=long, gap=0.0, active_tokens=[long]),
        feature_label(promoted=long, gap=0.0, active_tokens=[]),
    ):
        assert len(label) == MAX_LABEL_CHARS and label.endswith(('…"', '…"?'))


def test_tokens_are_quoted_as_json_strings() -> None:
    assert quote_token("\n") == '"\\n"'
    assert quote_token('say "hi"') == '"say \\"hi\\""'
    assert quote_token("\n" * 20, max_chars=8) == '"\\n\\n…"'  # an escape is never cut in two
    assert quote_token("\\" * 20, max_chars=8) == '"\\\\\\\\…"'
