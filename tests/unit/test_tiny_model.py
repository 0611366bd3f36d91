"""The tiny random GPT-2 of the transcoder tests boots with the corpus vocabulary."""

from tests.builders import D_MODEL


def test_fixture_model_speaks_the_corpus_vocabulary(tiny_bridge, small_tokens) -> None:
    assert tiny_bridge.cfg.n_layers == 2 and tiny_bridge.cfg.d_model == D_MODEL
    assert tiny_bridge.tokenizer.bos_token_id == small_tokens.eot
    assert int(small_tokens.train.max()) < tiny_bridge.cfg.d_vocab
