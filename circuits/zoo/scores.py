"""Task scores on held-out prompts: IOI logit difference and greater-than probability difference.

Scores take a function from token ids to logits so that training (plain HF model) and evaluation
(TransformerBridge) share one implementation.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from circuits.corpus.greater_than import GREATER_THAN
from circuits.corpus.ioi import IOI, IOIPrompt
from circuits.corpus.vocab import NAMES, TWO_DIGITS

LogitsFn = Callable[[Int[Tensor, "batch pos"]], Float[Tensor, "batch pos d_vocab"]]

EVAL_SEED = 12345
"""Seed of the held-out prompts; fixed so scores are comparable across models."""


def final_logits(
    logits_fn: LogitsFn, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]
) -> Float[Tensor, " n d_vocab"]:
    """Logits at the last position of each text (prefixed with the end-of-text token).

    Texts are batched by token length, so no padding is needed.
    """
    ids = [[tokenizer.bos_token_id, *tokenizer.encode(t, add_special_tokens=False)] for t in texts]
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, seq in enumerate(ids):
        by_len[len(seq)].append(i)
    out: list[Tensor | None] = [None] * len(texts)
    with torch.no_grad():
        for indices in by_len.values():
            batch = torch.tensor([ids[i] for i in indices])
            last = logits_fn(batch)[:, -1].float()
            for row, i in zip(last, indices, strict=True):
                out[i] = row
    return torch.stack([t for t in out if t is not None])


def single_token(tokenizer: PreTrainedTokenizerBase, word: str) -> int:
    ids = tokenizer.encode(word, add_special_tokens=False)
    assert len(ids) == 1, f"{word!r} is not one token: {ids}"
    return ids[0]


def ioi_scores(
    logits_fn: LogitsFn,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[IOIPrompt],
    pool: Sequence[str],
) -> dict[str, float]:
    """Mean logit(IO) - logit(S) at the end, the share of prompts where IO wins, and the two
    halves of the difference.

    `io_boost` and `s_boost` are the logits of IO and S above the mean logit of the names of
    `pool` (the names the prompts are drawn from) that the prompt does not mention, so that
    `logit_diff = io_boost - s_boost`. A model that copies names from the context but does not
    suppress the repeated one has both boosts positive; IOI proper has `s_boost` far below.
    `accuracy_io_first` and `accuracy_s_first` split the accuracy by the order of the names in
    the intro (present when the prompts hold both orders).
    """
    logits = final_logits(logits_fn, tokenizer, [p.text for p in prompts])
    io = torch.tensor([single_token(tokenizer, p.io) for p in prompts])
    s = torch.tensor([single_token(tokenizer, p.s) for p in prompts])
    rows = torch.arange(len(prompts))
    names = torch.tensor([single_token(tokenizer, f" {name}") for name in pool])
    absent = (names[None, :] != io[:, None]) & (names[None, :] != s[:, None])
    baseline = (logits[:, names] * absent).sum(-1) / absent.sum(-1)
    io_boost, s_boost = logits[rows, io] - baseline, logits[rows, s] - baseline
    diff = io_boost - s_boost
    scores = {
        "logit_diff": diff.mean().item(),
        "accuracy": (diff > 0).float().mean().item(),
        "io_boost": io_boost.mean().item(),
        "s_boost": s_boost.mean().item(),
    }
    io_first = torch.tensor([p.io_first for p in prompts])
    if io_first.any() and not io_first.all():
        scores["accuracy_io_first"] = (diff[io_first] > 0).float().mean().item()
        scores["accuracy_s_first"] = (diff[~io_first] > 0).float().mean().item()
    return scores


def greater_than_scores(
    logits_fn: LogitsFn, tokenizer: PreTrainedTokenizerBase, n: int
) -> dict[str, float]:
    """Mean of sum_{y > YY} p(y) - sum_{y <= YY} p(y) over the year endings "00".."99"."""
    prompts = GREATER_THAN.heldout_prompts(n, EVAL_SEED)
    probs = final_logits(logits_fn, tokenizer, [p.text for p in prompts]).softmax(-1)
    years = torch.tensor([single_token(tokenizer, y) for y in TWO_DIGITS])
    year_probs = probs[:, years]  # [n, 100], column y is the probability of ending y
    later = torch.arange(100)[None, :] > torch.tensor([p.start_year for p in prompts])[:, None]
    diff = (year_probs * later).sum(-1) - (year_probs * ~later).sum(-1)
    return {"prob_diff": diff.mean().item(), "mass_on_years": year_probs.sum(-1).mean().item()}


def task_scores(
    logits_fn: LogitsFn, tokenizer: PreTrainedTokenizerBase, n_prompts: int = 200
) -> dict[str, float]:
    """All task scores, keyed `task.metric` (e.g. `ioi.logit_diff`).

    `ioi.*_seen_names` score held-out templates filled with training names: a diagnostic that
    tells a mechanism failing on new templates from one failing on new names.
    """
    ioi = ioi_scores(logits_fn, tokenizer, IOI.heldout_prompts(n_prompts, EVAL_SEED), NAMES.heldout)
    seen_names = ioi_scores(
        logits_fn, tokenizer, IOI.heldout_template_prompts(n_prompts, EVAL_SEED), NAMES.train
    )
    scores = {f"ioi.{k}": v for k, v in ioi.items()}
    scores |= {f"ioi.{k}_seen_names": v for k, v in seen_names.items()}
    gt = greater_than_scores(logits_fn, tokenizer, n_prompts)
    scores.update({f"greater_than.{k}": v for k, v in gt.items()})
    return scores
