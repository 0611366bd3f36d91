"""A task's specification: what a task file says, checked for consistency.

`TaskSpec.__post_init__` raises `ValueError("[section] key: reason; fix")`; the loader prefixes
the file's path, so every problem reads as one line naming the file, the key and the fix.
"""

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from circuits.errors import TaskFileError
from circuits.tasks.metrics import METRICS
from circuits.tasks.template import brace_problem, literal_parts, placeholders, render

END = "END"
"""The implicit role: the last position of every prompt."""

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ROLE_REF = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:#([1-9][0-9]*))?(?:\+([0-9]+))?")
MAX_COUNT = 10_000
"""Most prompts one prompt set holds: building them takes a few seconds, and attributing them
(a graph per prompt) hours on a CPU; more would only look like a hang."""


def count_problem(count: int) -> str | None:
    """Why `count` is not a number of prompts a prompt set can hold, or None."""
    if count < 1:
        return f"must be at least 1, got {count}"
    if count > MAX_COUNT:
        return (
            f"{count:,} prompts is more than the {MAX_COUNT:,} a prompt set holds (building and "
            f"attributing them would take days); use a count of at most {MAX_COUNT:,}"
        )
    return None


def check_count(count: int) -> int:
    """`count` if a prompt set can hold that many prompts (1 to MAX_COUNT), else TaskFileError.

    Cheap: call it on a `--count` before loading a model.
    """
    problem = count_problem(count)
    if problem is not None:
        raise TaskFileError(f"count: {problem}")
    return count


@dataclass(frozen=True, kw_only=True)
class RoleRef:
    """Which token a role names: the first token of a filler's n-th occurrence, plus an offset."""

    filler: str
    """The filler's name."""
    number: int = 1
    """Which occurrence, counted from 1 in the rendered clean prompt (`S#2`: the second S)."""
    offset: int = 0
    """Tokens after the occurrence's first token (`S#1+1`: the token after the first S)."""

    def __post_init__(self) -> None:
        if self.number < 1 or self.offset < 0:
            raise ValueError(f"need number >= 1 and offset >= 0, got {self.number}, {self.offset}")

    @classmethod
    def parse(cls, text: str) -> "RoleRef":
        """`"S"`, `"S#2"` or `"S#1+1"`."""
        match = ROLE_REF.fullmatch(text)
        if match is None:
            raise ValueError(
                f'{text!r} is not FILLER, FILLER#N or FILLER#N+K (e.g. "S#2", "S#1+1")'
            )
        return cls(filler=match[1], number=int(match[2] or 1), offset=int(match[3] or 0))

    def __str__(self) -> str:
        return self.filler + f"#{self.number}" + (f"+{self.offset}" if self.offset else "")


ValueOf = Callable[[str], str]


@dataclass(frozen=True, kw_only=True)
class AnswerTemplates:
    """Answers written as templates of single tokens, e.g. `[" {IO}"]`."""

    templates: tuple[str, ...]
    """Each renders, with the prompt's filler values, to one token."""

    def __post_init__(self) -> None:
        if not self.templates:
            raise ValueError("needs at least one answer template")
        for template in self.templates:
            problem = brace_problem(template)
            if problem:
                raise ValueError(problem)

    def fillers(self) -> list[str]:
        return [name for t in self.templates for name in placeholders(t)]

    def words(self, value_of: ValueOf) -> list[str]:
        return [render(t, value_of).text for t in self.templates]


COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "above": operator.gt,
    "not_above": operator.le,
    "below": operator.lt,
    "not_below": operator.ge,
}


@dataclass(frozen=True, kw_only=True)
class AnswerRange:
    """Answers chosen from a number range by comparison with a filler (greater-than years)."""

    values: tuple[str, ...]
    """Candidate tokens, e.g. "00".."99"."""
    comparison: str
    """One of COMPARISONS: `above` keeps the values greater than the filler's."""
    filler: str
    """The filler compared with, e.g. YY."""

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(
                f"unknown comparison {self.comparison!r}; use one of {', '.join(COMPARISONS)}"
            )

    def fillers(self) -> list[str]:
        return [self.filler]

    def words(self, value_of: ValueOf) -> list[str]:
        text = render(f"{{{self.filler}}}", value_of).text
        if not text.strip().isdigit():
            raise ValueError(f"{self.comparison} compares numbers, but {self.filler} is {text!r}")
        compare = COMPARISONS[self.comparison]
        return [v for v in self.values if compare(int(v), int(text))]


Answers = AnswerTemplates | AnswerRange


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """One task: how to build its prompts, what to measure, and what is known about it."""

    name: str
    """Short name, used for output folders (`out/<name>`)."""
    description: str
    """One or two sentences for reports."""
    path: Path
    """The task file."""
    metric: str
    """A name in `circuits.tasks.metrics.METRICS`: logit_diff, prob_diff, logprob or logit."""
    count: int
    """Number of prompts built by default."""
    seed: int
    """Seed of the filler draws; the same seed builds the same prompts."""
    default_model: str | None = None
    """Model spec used when the user names none (e.g. `zoo:tiny`)."""
    default_transcoders: str | None = None
    """Transcoder directory used when the user names none; None: the model's registered set."""
    ground_truth: dict[str, dict] = field(default_factory=dict)
    """Model id -> published facts (components, roles), free-form as the file writes them."""
    template: str
    """The clean prompt, with `{FILLER}` placeholders."""
    corrupt: str
    """The corrupted prompt: the template's text with some placeholders swapped."""
    answers: Answers
    """Tokens the metric counts for the behaviour."""
    wrong: Answers | None = None
    """Tokens it counts against (None for metrics that read only answers)."""
    fillers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Filler name -> the values it is drawn from (ranges and aliases already expanded)."""
    cases: tuple[dict[str, str], ...] = ()
    """Explicit prompts: prompt i fixes the fillers of case i (cycling), others are drawn."""
    distinct: tuple[tuple[str, ...], ...] = ()
    """Groups of fillers that get different values in each prompt."""
    aligned: tuple[tuple[str, ...], ...] = ()
    """Groups of fillers drawn at the same index of their equally long lists."""
    roles: dict[str, RoleRef] = field(default_factory=dict)
    """Role name -> the token it names; END (the last token) is implicit."""
    position: str = END
    """The role whose next-token prediction the metric reads."""

    def __post_init__(self) -> None:
        _check_task(self)
        defined = _check_fillers(self)
        _check_prompts(self, defined)
        _check_groups(self, defined)
        _check_roles(self, defined)

    @property
    def defined_fillers(self) -> set[str]:
        return set(self.fillers) | {name for case in self.cases for name in case}


def _check_task(spec: TaskSpec) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", spec.name):
        raise ValueError(
            f"[task] name: {spec.name!r} must be letters, digits, '_', '.' or '-' (it names the "
            "output folder)"
        )
    if spec.metric not in METRICS:
        raise ValueError(
            f"[task] metric: unknown metric {spec.metric!r}; use one of {', '.join(METRICS)}"
        )
    problem = count_problem(spec.count)
    if problem is not None:
        raise ValueError(f"[task] count: {problem}")
    if spec.seed < 0:
        raise ValueError(f"[task] seed: must be >= 0, got {spec.seed}")


def _uses(spec: TaskSpec) -> dict[str, list[str]]:
    """Where each placeholder is used: `[prompts] template`, `[fillers] X`, ... -> names."""
    uses = {
        "[prompts] template": placeholders(spec.template),
        "[prompts] corrupt": placeholders(spec.corrupt),
        "[prompts] answers": spec.answers.fillers(),
    }
    if spec.wrong is not None:
        uses["[prompts] wrong"] = spec.wrong.fillers()
    for name, values in spec.fillers.items():
        uses[f"[fillers] {name}"] = [n for v in values for n in placeholders(v)]
    for i, case in enumerate(spec.cases):
        uses[f"[prompts] cases[{i}]"] = [n for v in case.values() for n in placeholders(v)]
    return uses


def _check_fillers(spec: TaskSpec) -> set[str]:
    """Check names, values, references and cycles; return the defined filler names."""
    for name, values in spec.fillers.items():
        if not NAME.fullmatch(name):
            raise ValueError(f"[fillers] {name}: names are letters, digits and _ ({name!r})")
        if not values:
            raise ValueError(f"[fillers] {name}: has no values; give at least one")
        for value in values:
            problem = brace_problem(value)
            if problem:
                raise ValueError(f"[fillers] {name}: {problem}")
    for i, case in enumerate(spec.cases):
        for name, value in case.items():
            problem = None if NAME.fullmatch(name) else f"{name!r} is not a filler name"
            problem = problem or brace_problem(value)
            if problem:
                raise ValueError(f"[prompts] cases[{i}] {name}: {problem}")
        missing = {n for c in spec.cases for n in c} - set(case) - set(spec.fillers)
        if missing:
            raise ValueError(
                f"[prompts] cases[{i}]: lacks {', '.join(sorted(missing))}, which other cases "
                "set and [fillers] does not define; set them in every case"
            )
    defined = spec.defined_fillers
    uses = _uses(spec)
    for where, names in uses.items():
        for name in names:
            if name not in defined:
                raise ValueError(
                    f"{where}: placeholder {{{name}}} has no filler; add {name} to [fillers]"
                )
    used = {n for names in uses.values() for n in names}
    sources = [("[fillers]", name) for name in spec.fillers]
    sources += [
        (f"[prompts] cases[{i}]", name) for i, case in enumerate(spec.cases) for name in case
    ]
    for where, name in sources:
        if name not in used:
            raise ValueError(
                f"{where} {name}: not used by the template, corruption, answers or another "
                "filler; remove it or fix the placeholder's spelling"
            )
    _check_cycles(spec)
    return defined


def _check_cycles(spec: TaskSpec) -> None:
    refs: dict[str, set[str]] = {
        n: {p for v in vs for p in placeholders(v)} for n, vs in spec.fillers.items()
    }
    for case in spec.cases:
        for name, value in case.items():
            refs.setdefault(name, set()).update(placeholders(value))

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise ValueError(f"[fillers] {name}: refers to itself ({cycle}); break the cycle")
        for ref in sorted(refs.get(name, ())):
            visit(ref, (*path, name))

    for name in refs:
        visit(name, ())


def _check_prompts(spec: TaskSpec, defined: set[str]) -> None:
    for key in ("template", "corrupt"):
        if not getattr(spec, key).strip():
            raise ValueError(
                f"[prompts] {key}: is empty; write the prompt's text, with {{FILLER}} placeholders"
            )
        problem = brace_problem(getattr(spec, key))
        if problem:
            raise ValueError(f"[prompts] {key}: {problem}")
    clean, corrupt = literal_parts(spec.template), literal_parts(spec.corrupt)
    if clean != corrupt:
        raise ValueError(
            f"[prompts] corrupt: must keep the template's text outside placeholders so positions "
            f"line up ({clean} vs {corrupt}); move what changes into a filler, e.g. "
            '{YY_CORRUPT} with values ["01"]'
        )
    needs_wrong = METRICS[spec.metric].needs_wrong
    if needs_wrong and spec.wrong is None:
        raise ValueError(f"[prompts] wrong: metric {spec.metric} needs wrong answers; add wrong")
    if not needs_wrong and spec.wrong is not None:
        raise ValueError(
            f"[prompts] wrong: metric {spec.metric} reads only the first answer; remove wrong"
        )


def _check_groups(spec: TaskSpec, defined: set[str]) -> None:
    seen_aligned: set[str] = set()
    for key, groups in (("distinct", spec.distinct), ("aligned", spec.aligned)):
        for group in groups:
            if len(group) < 2 or len(set(group)) != len(group):
                raise ValueError(
                    f"[prompts] {key}: group {list(group)} needs two or more different fillers"
                )
            for name in group:
                if name not in defined:
                    raise ValueError(
                        f"[prompts] {key}: {name} is not a filler; define it in [fillers]"
                    )
    for group in spec.aligned:
        lengths = {name: len(spec.fillers.get(name, ())) for name in group}
        if len(set(lengths.values())) != 1 or 0 in lengths.values():
            raise ValueError(
                f"[prompts] aligned: {list(group)} need [fillers] lists of one length, got "
                f"{lengths}"
            )
        if seen_aligned & set(group):
            raise ValueError(
                f"[prompts] aligned: {sorted(seen_aligned & set(group))} in two groups; merge them"
            )
        seen_aligned |= set(group)
        for i, case in enumerate(spec.cases):
            fixed = [name for name in group if name in case]
            if fixed and len(fixed) != len(group):
                raise ValueError(
                    f"[prompts] cases[{i}]: fixes {fixed} but not all of aligned {list(group)}; "
                    "fix all of them or none"
                )


def _check_roles(spec: TaskSpec, defined: set[str]) -> None:
    for role, ref in spec.roles.items():
        if role == END:
            raise ValueError(f"[roles] {END}: is implicit (the last token); remove it")
        if ref.filler not in defined:
            raise ValueError(
                f"[roles] {role}: {ref.filler} is not a filler; define it in [fillers]"
            )
    if spec.position != END and spec.position not in spec.roles:
        raise ValueError(
            f"[prompts] position: {spec.position!r} is not a role; name one of "
            f"{', '.join([*spec.roles, END])}"
        )
