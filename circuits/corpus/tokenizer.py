"""A byte-level BPE tokenizer trained on the corpus, with every task word forced to one token.

Digit runs are split into chunks of at most two digits, the leading space kept (" 1732" ->
" 17" + "32"), so that years decompose the way the greater-than task reads them.
"""

from collections.abc import Iterable, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from circuits.corpus.vocab import CENTURIES, TWO_DIGITS
from circuits.errors import CorpusError

END_OF_TEXT = "<|endoftext|>"

_FORCED_REPEATS = 100


def forced_tokens(words: Sequence[str]) -> list[str]:
    """Strings the tasks need as single tokens: `words` (names with their leading space, and
    so on), centuries and two-digit year endings."""
    return [*words, *[f" {c}" for c in CENTURIES], *TWO_DIGITS]


def train_tokenizer(
    texts: Iterable[str], *, vocab_size: int, words: Sequence[str]
) -> PreTrainedTokenizerFast:
    """Train the tokenizer on `texts`, then check that every forced token (`words` among them)
    is a single token."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r" ?\d{1,2}"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Years written as in the tasks (" 1732"), so that pre-tokenization yields " 17" and "32".
    years = [f" {c}{yy}" for c in CENTURIES for yy in TWO_DIGITS]
    spaced = [w for w in words if w.startswith(" ")]
    forced = "".join(spaced + years)
    unspaced = [w for w in words if not w.startswith(" ")]  # each a text of its own

    def stream() -> Iterable[str]:
        yield from texts
        for _ in range(_FORCED_REPEATS):
            yield forced
            yield from unspaced

    tokenizer.train_from_iterator(stream(), trainer)
    wrapped = wrap(tokenizer)
    check_single_tokens(wrapped, forced_tokens(words))
    return wrapped


def wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
    )


def end_of_text_id(tokenizer: PreTrainedTokenizerFast) -> int:
    """The id of the document separator, which also serves as BOS and padding."""
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    assert isinstance(eot, int), f"tokenizer has no single {END_OF_TEXT} token"
    return eot


def check_single_tokens(tokenizer: PreTrainedTokenizerFast, words: Iterable[str]) -> None:
    """Raise naming every word that does not encode to exactly one token."""
    bad = {}
    for word in words:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            bad[word] = tokenizer.convert_ids_to_tokens(ids)
    if bad:
        raise CorpusError(
            f"these task words are not single tokens: {bad}; raise the vocabulary size "
            "or the forced repeats"
        )
