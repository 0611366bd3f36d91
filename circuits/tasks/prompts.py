"""Prompt sets: a task's prompts drawn, tokenized and checked for one tokenizer and context size.

Every prompt starts with the tokenizer's BOS (end-of-text) token, as zoo models saw at document
starts. Its corruption has the same length with every placeholder at the same token, so
activations can be patched position by position; answers are single tokens.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from circuits.attribution.targets import Target
from circuits.errors import TaskFileError
from circuits.tasks.fillers import Draw
from circuits.tasks.metrics import METRICS
from circuits.tasks.spec import END, AnswerRange, Answers, AnswerTemplates, TaskSpec, check_count
from circuits.tasks.template import Rendered, placeholders, render


@dataclass(frozen=True, kw_only=True)
class TaskPrompt:
    """One clean prompt, its corruption, and what the metric reads."""

    text: str
    """The clean prompt (without the BOS token)."""
    tokens: list[int]
    """Its token ids, starting with the BOS token."""
    corrupt_text: str
    """The corrupted prompt."""
    corrupt_tokens: list[int]
    """Its token ids: as many as `tokens`, roles at the same positions."""
    answers: list[int]
    """Single-token answers the metric counts for the behaviour."""
    wrong: list[int]
    """Single tokens it counts against (empty for metrics that read only answers)."""
    roles: dict[str, int]
    """Role name -> position in `tokens`; always has END, the last position."""
    position: int
    """Position whose next-token prediction the metric reads."""
    answer_words: list[str] = field(default_factory=list)
    """The answers as text, e.g. `[" Mary"]`."""
    wrong_words: list[str] = field(default_factory=list)
    """The wrong tokens as text."""
    fillers: dict[str, str] = field(default_factory=dict)
    """The filler values drawn for this prompt (unrendered)."""

    def __post_init__(self) -> None:
        n_pos = len(self.tokens)
        if len(self.corrupt_tokens) != n_pos:
            raise ValueError(
                f"corrupt_tokens: {len(self.corrupt_tokens)} tokens, tokens has {n_pos}"
            )
        if self.roles.get(END) != n_pos - 1:
            raise ValueError(f"roles: END must be {n_pos - 1}, got {self.roles.get(END)}")
        if not 0 <= self.position < n_pos:
            raise ValueError(f"position: {self.position} outside 0..{n_pos - 1}")
        if not self.answers:
            raise ValueError("answers: empty; a prompt needs at least one answer")
        if set(self.answers) & set(self.wrong):
            raise ValueError(
                f"answers and wrong share {sorted(set(self.answers) & set(self.wrong))}"
            )


@dataclass(frozen=True, kw_only=True)
class PromptSet:
    """A task's prompts for one tokenizer, with its metric."""

    spec: TaskSpec
    """The task they were built from."""
    prompts: list[TaskPrompt]
    """The prompts, in the order drawn."""
    roles: list[str]
    """Role names, ordered by their mean position over the prompts (END last)."""

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ValueError("prompts: empty; build at least one prompt")
        for i, prompt in enumerate(self.prompts):
            if set(prompt.roles) != set(self.roles):
                raise ValueError(f"prompts[{i}]: roles {sorted(prompt.roles)} != {self.roles}")

    def __len__(self) -> int:
        return len(self.prompts)

    def metric_value(
        self, logits: Float[Tensor, " d_vocab"], prompt: TaskPrompt
    ) -> Float[Tensor, ""]:
        """The task metric on the logits at `prompt.position`: a differentiable scalar."""
        return METRICS[self.spec.metric].value(logits, prompt.answers, prompt.wrong)

    def target(self, logits: Float[Tensor, "n_pos d_vocab"], prompt: TaskPrompt) -> Target:
        """The metric as an attribution target at `prompt.position` (linearised on `logits`)."""
        metric = METRICS[self.spec.metric]
        label = _label(prompt.answer_words)
        if metric.needs_wrong:
            label += f" - {_label(prompt.wrong_words)}"
        name = f"{metric.name}({label})"
        return metric.target(logits, prompt.answers, prompt.wrong, prompt.position, name)


def _label(words: Sequence[str]) -> str:
    return "|".join(words) if len(words) <= 2 else f"{len(words)} tokens"


def build_prompt_set(
    spec: TaskSpec,
    tokenizer: PreTrainedTokenizerBase,
    *,
    n_ctx: int,
    count: int | None = None,
    seed: int | None = None,
) -> PromptSet:
    """Draw `count` prompts (default: the file's) with `seed` (default: the file's).

    Raises `TaskFileError` naming the prompt when one does not fit the tokenizer or `n_ctx`, and
    for a count outside 1..MAX_COUNT (`check_count` says so before a model is loaded).
    A progress bar shows where building takes more than a few seconds (thousands of prompts).
    """
    count = spec.count if count is None else count
    seed = spec.seed if seed is None else seed
    check_count(count)  # the file's own count was checked when it loaded
    builder = _Builder(spec, tokenizer, n_ctx)
    builder.check_answer_values()
    rng = random.Random(seed)
    draws = tqdm(range(count), desc=f"{spec.name} prompts", unit="prompt", delay=3, leave=False)
    prompts = [builder.prompt(i, rng) for i in draws]
    order = [*spec.roles, END]
    mean = {r: sum(p.roles[r] for p in prompts) / len(prompts) for r in order}
    roles = sorted(order, key=lambda r: (r == END, mean[r], order.index(r)))
    return PromptSet(spec=spec, prompts=prompts, roles=roles)


class _Builder:
    """Builds and checks the prompts of one spec for one tokenizer."""

    def __init__(self, spec: TaskSpec, tokenizer: PreTrainedTokenizerBase, n_ctx: int) -> None:
        self.spec, self.tokenizer, self.n_ctx = spec, tokenizer, n_ctx
        self.token_ids: dict[str, int] = {}
        """Single-token words already encoded: answer ranges ask for the same ones each prompt."""
        bos = tokenizer.bos_token_id
        bos = tokenizer.eos_token_id if bos is None else bos
        if not isinstance(bos, int):
            self.fail(
                "[task] model",
                "the tokenizer has no BOS or end-of-text token to start prompts with",
            )
        self.bos: int = bos
        if not getattr(tokenizer, "is_fast", False):
            self.fail(
                "[task] model", "roles need a fast tokenizer (offsets mapping); load a fast one"
            )

    def fail(self, where: str, message: str) -> NoReturn:
        """Raise the one-line error: `tasks/ioi.toml: [prompts] answers: <message>`."""
        raise TaskFileError(f"{self.spec.path}: {where}: {message}")

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = [int(i) for i in encoding["input_ids"]]
        offsets = [(int(a), int(b)) for a, b in encoding["offset_mapping"]]
        return [self.bos, *ids], [(0, 0), *offsets]

    def token_id(self, word: str, key: str) -> int:
        if word in self.token_ids:
            return self.token_ids[word]
        ids = self.tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            pieces = [self.tokenizer.decode([i]) for i in ids]
            self.fail(
                f"[prompts] {key}",
                f"{word!r} is {len(ids)} tokens for this tokenizer ({word!r} -> {pieces}); "
                "answers must be single tokens: use another word or a tokenizer that has it",
            )
        self.token_ids[word] = ids[0]
        return ids[0]

    def check_answer_values(self) -> None:
        """Check every answer the file can produce, where they can be listed without drawing."""
        fixed = {name for case in self.spec.cases for name in case}
        for key, answers in (("answers", self.spec.answers), ("wrong", self.spec.wrong)):
            for word in _listable_words(answers, self.spec.fillers, fixed):
                self.token_id(word, key)

    def prompt(self, i: int, rng: random.Random) -> TaskPrompt:
        spec = self.spec
        fixed = spec.cases[i % len(spec.cases)] if spec.cases else {}
        draw = Draw(
            fillers=spec.fillers, aligned=spec.aligned, distinct=spec.distinct, fixed=fixed, rng=rng
        )
        key = "template"
        try:
            clean = render(spec.template, draw)
            key = "corrupt"
            corrupt = render(spec.corrupt, draw)
            key = "answers"
            answer_words = list(dict.fromkeys(spec.answers.words(draw)))
            key = "wrong"
            wrong_words = list(dict.fromkeys(spec.wrong.words(draw))) if spec.wrong else []
        except ValueError as err:
            self.fail(f"[prompts] {key}", f"prompt {i}: {err}")
        if not clean.text.strip():
            self.fail(
                "[prompts] template",
                f"prompt {i} is empty ({spec.template!r} with {dict(draw.values)}); give the "
                "template text of its own or fillers that are not empty",
            )
        tokens, offsets = self.encode(clean.text)
        corrupt_tokens, corrupt_offsets = self.encode(corrupt.text)
        self.check_lengths(i, clean, corrupt, len(tokens), len(corrupt_tokens))
        self.check_slots(i, clean, corrupt, offsets, corrupt_offsets)
        if not answer_words:
            self.fail(
                "[prompts] answers", f"prompt {i} {clean.text!r} has no answers; narrow the fillers"
            )
        roles = self.roles(i, clean, offsets)
        answers = [self.token_id(w, "answers") for w in answer_words]
        wrong = [self.token_id(w, "wrong") for w in wrong_words]
        if set(answers) & set(wrong):
            self.fail(
                "[prompts] wrong",
                f"prompt {i} {clean.text!r}: {answer_words} and {wrong_words} overlap",
            )
        return TaskPrompt(
            text=clean.text,
            tokens=tokens,
            corrupt_text=corrupt.text,
            corrupt_tokens=corrupt_tokens,
            answers=answers,
            wrong=wrong,
            roles=roles,
            position=roles[spec.position],
            answer_words=answer_words,
            wrong_words=wrong_words,
            fillers=dict(draw.values),
        )

    def check_lengths(
        self, i: int, clean: Rendered, corrupt: Rendered, n_clean: int, n_corrupt: int
    ) -> None:
        if n_clean > self.n_ctx:
            self.fail(
                "[prompts] template",
                f"prompt {i} {clean.text!r} is {n_clean} tokens (with BOS), more than the "
                f"model's n_ctx = {self.n_ctx}; shorten the template or its fillers",
            )
        if n_corrupt != n_clean:
            self.fail(
                "[prompts] corrupt",
                f"prompt {i} {clean.text!r} is {n_clean} tokens but its corruption "
                f"{corrupt.text!r} is {n_corrupt}; corrupt fillers must tokenize to as many "
                "tokens as the ones they replace",
            )

    def check_slots(
        self,
        i: int,
        clean: Rendered,
        corrupt: Rendered,
        offsets: list[tuple[int, int]],
        corrupt_offsets: list[tuple[int, int]],
    ) -> None:
        names = placeholders(self.spec.template)
        for k, (start, corrupt_start) in enumerate(zip(clean.slots, corrupt.slots, strict=True)):
            pos, corrupt_pos = _position(offsets, start), _position(corrupt_offsets, corrupt_start)
            if pos != corrupt_pos:
                self.fail(
                    "[prompts] corrupt",
                    f"prompt {i}: placeholder {k + 1} ({{{names[k]}}}) is at token {pos} in "
                    f"{clean.text!r} but at {corrupt_pos} in its corruption {corrupt.text!r}; "
                    "corrupt fillers must tokenize like the ones they replace",
                )

    def roles(self, i: int, clean: Rendered, offsets: list[tuple[int, int]]) -> dict[str, int]:
        roles = {}
        for role, ref in self.spec.roles.items():
            occurrence = clean.find(ref.filler, ref.number)
            if occurrence is None:
                self.fail(f"[roles] {role}", f"{ref} does not occur in prompt {i} {clean.text!r}")
            pos = _position(offsets, occurrence.start) + ref.offset
            if pos >= len(offsets):
                self.fail(f"[roles] {role}", f"{ref} is past the end of prompt {i} {clean.text!r}")
            roles[role] = pos
        roles[END] = len(offsets) - 1
        return roles


def _position(offsets: list[tuple[int, int]], char: int) -> int:
    """The token holding character `char` (the first one ending after it); BOS is token 0."""
    for pos, (_, end) in enumerate(offsets):
        if pos > 0 and end > char:
            return pos
    return len(offsets)  # an empty filler at the very end: past the last token


def _listable_words(
    answers: Answers | None, fillers: dict[str, tuple[str, ...]], fixed: set[str]
) -> list[str]:
    """All words `answers` can produce, when that is a plain list; else the empty list."""
    if isinstance(answers, AnswerRange):
        return list(answers.values)
    if not isinstance(answers, AnswerTemplates):
        return []
    words = []
    for template in answers.templates:
        names = placeholders(template)
        if len(names) != 1 or names[0] not in fillers or names[0] in fixed:
            continue
        values = fillers[names[0]]
        if any(placeholders(v) for v in values):
            continue
        words += [render(template, lambda _, v=v: v).text for v in values]
    return words
