"""Task files: parsing, prompt building, the one-line errors of bad files, metrics and targets."""

from pathlib import Path

import pytest
import torch

from circuits.models import load_tokenizer, resolve_model_dir
from circuits.tasks import PromptSet, TaskFileError, build_prompt_set, load_task
from circuits.tasks.metrics import METRICS

IOI = """
[task]
name = "mini_ioi"
description = "A small IOI task."
metric = "logit_diff"
count = 8
seed = 3

[prompts]
template = "When {PAIR} went to the {PLACE}, {S} gave a {OBJECT} to"
corrupt = "When {PAIR} went to the {PLACE}, {C} gave a {OBJECT} to"
answers = [" {IO}"]
wrong = [" {S}"]
distinct = [["IO", "S", "C"]]

[fillers]
PAIR = ["{IO} and {S}", "{S} and {IO}"]
IO = ["Mary", "John", "Alice", "Bob"]
S = { same_as = "IO" }
C = { same_as = "IO" }
PLACE = ["store", "park"]
OBJECT = ["drink", "book"]

[roles]
IO = "IO"
S1 = "S#1"
"S1+1" = "S#1+1"
S2 = "S#2"

[ground_truth.gpt2]
heads = { name_mover = ["9.9", "10.0"] }
"""

YEARS = """
[task]
name = "years"
description = "Greater-than."
metric = "prob_diff"
count = 6
seed = 0

[prompts]
template = "The war lasted from the year {XX}{YY} to the year {XX}"
corrupt = "The war lasted from the year {XX}{YY_CORRUPT} to the year {XX}"
answers = { range = "00..99", above = "YY" }
wrong = { range = "00..99", not_above = "YY" }

[fillers]
XX = { range = "11..19" }
YY = { range = "02..98" }
YY_CORRUPT = ["01"]

[roles]
YY = "YY"
"""


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model_dir("zoo:tiny"))


def write(tmp_path: Path, text: str, name: str = "task.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def build(tmp_path: Path, text: str, tokenizer, **kwargs) -> PromptSet:
    kwargs.setdefault("n_ctx", 256)
    return build_prompt_set(load_task(write(tmp_path, text)), tokenizer, **kwargs)


def test_same_seed_builds_the_same_prompts(tmp_path, tokenizer) -> None:
    first = build(tmp_path, IOI, tokenizer)
    second = build(tmp_path, IOI, tokenizer)
    assert first.prompts == second.prompts
    assert len(first) == 8
    other = build(tmp_path, IOI, tokenizer, seed=4)
    assert [p.text for p in other.prompts] != [p.text for p in first.prompts]


def test_more_prompts_extend_the_same_sequence(tmp_path, tokenizer) -> None:
    few = build(tmp_path, IOI, tokenizer, count=3)
    many = build(tmp_path, IOI, tokenizer, count=12)
    assert many.prompts[:3] == few.prompts


def test_repeated_filler_has_one_value_and_roles_find_each_occurrence(tmp_path, tokenizer) -> None:
    prompts = build(tmp_path, IOI, tokenizer)
    assert set(prompts.roles) == {"IO", "S1", "S1+1", "S2", "END"}
    assert prompts.roles[-2:] == ["S2", "END"]
    for prompt in prompts.prompts:
        io, s = prompt.fillers["IO"], prompt.fillers["S"]
        assert prompt.text.count(f" {s} ") == 2 and prompt.text.count(f" {io} ") == 1
        piece = [tokenizer.decode([t]) for t in prompt.tokens]
        assert piece[prompt.roles["IO"]] == f" {io}"
        assert piece[prompt.roles["S1"]] == piece[prompt.roles["S2"]] == f" {s}"
        assert prompt.roles["S1+1"] == prompt.roles["S1"] + 1
        assert prompt.roles["S1"] < prompt.roles["S2"]
        assert prompt.roles["END"] == prompt.position == len(prompt.tokens) - 1


def test_prompts_start_with_bos_and_corruption_changes_only_s2(tmp_path, tokenizer) -> None:
    for prompt in build(tmp_path, IOI, tokenizer).prompts:
        assert prompt.tokens[0] == tokenizer.bos_token_id == prompt.corrupt_tokens[0]
        assert prompt.tokens[1:] == tokenizer.encode(prompt.text, add_special_tokens=False)
        changed = [
            i
            for i, (a, b) in enumerate(zip(prompt.tokens, prompt.corrupt_tokens, strict=True))
            if a != b
        ]
        assert changed == [prompt.roles["S2"]]
        assert prompt.answers == [tokenizer.encode(f" {prompt.fillers['IO']}")[0]]
        assert prompt.wrong == [tokenizer.encode(f" {prompt.fillers['S']}")[0]]


def test_distinct_fillers_differ_in_every_prompt(tmp_path, tokenizer) -> None:
    for prompt in build(tmp_path, IOI, tokenizer, count=40).prompts:
        assert len({prompt.fillers[n] for n in ("IO", "S", "C")}) == 3


def test_both_pair_orders_are_drawn(tmp_path, tokenizer) -> None:
    prompts = build(tmp_path, IOI, tokenizer, count=40).prompts
    assert {p.roles["IO"] < p.roles["S1"] for p in prompts} == {True, False}


def test_aligned_fillers_are_drawn_at_the_same_index(tmp_path, tokenizer) -> None:
    text = """
[task]
name = "agree"
description = "Agreement."
metric = "logit_diff"
count = 20
seed = 1

[prompts]
template = "The {SUBJECT} near the tree"
corrupt = "The {FLIPPED} near the tree"
answers = [" {VERB}"]
wrong = [" {OTHER}"]
aligned = [["SUBJECT", "FLIPPED", "VERB", "OTHER"], ["SG", "PL"]]

[fillers]
SUBJECT = ["{SG}", "{PL}"]
FLIPPED = ["{PL}", "{SG}"]
VERB = ["is", "are"]
OTHER = ["are", "is"]
SG = ["dog", "car"]
PL = ["dogs", "cars"]
"""
    for prompt in build(tmp_path, text, tokenizer).prompts:
        plural = prompt.text.split()[1] in ("dogs", "cars")
        assert prompt.answer_words == [" are" if plural else " is"]
        assert prompt.corrupt_text.split()[1].rstrip("s") == prompt.text.split()[1].rstrip("s")


def test_number_rule_splits_the_range_at_the_filler(tmp_path, tokenizer) -> None:
    prompts = build(tmp_path, YEARS, tokenizer)
    for prompt in prompts.prompts:
        yy = int(prompt.fillers["YY"])
        assert prompt.answer_words == [f"{y:02d}" for y in range(yy + 1, 100)]
        assert prompt.wrong_words == [f"{y:02d}" for y in range(yy + 1)]
        assert tokenizer.decode([prompt.tokens[prompt.roles["YY"]]]) == prompt.fillers["YY"]
        assert tokenizer.decode([prompt.corrupt_tokens[prompt.roles["YY"]]]) == "01"


def test_cases_fix_filler_values(tmp_path, tokenizer) -> None:
    cases = (
        '[[prompts.cases]]\nIO = "Mary"\nS = "John"\n\n[[prompts.cases]]\nIO = "Alice"\nS = "Bob"\n'
    )
    prompts = build(tmp_path, f"{IOI}\n{cases}", tokenizer, count=4).prompts
    assert [p.fillers["IO"] for p in prompts] == ["Mary", "Alice", "Mary", "Alice"]
    assert [p.fillers["S"] for p in prompts] == ["John", "Bob", "John", "Bob"]
    assert all(p.fillers["C"] not in (p.fillers["IO"], p.fillers["S"]) for p in prompts)


def test_spec_keeps_defaults_and_ground_truth(tmp_path) -> None:
    text = IOI.replace("seed = 3", 'seed = 3\nmodel = "zoo:tiny"\ntranscoders = "some/dir"')
    spec = load_task(write(tmp_path, text))
    assert (spec.name, spec.metric, spec.count, spec.seed) == ("mini_ioi", "logit_diff", 8, 3)
    assert (spec.default_model, spec.default_transcoders) == ("zoo:tiny", "some/dir")
    assert spec.ground_truth == {"gpt2": {"heads": {"name_mover": ["9.9", "10.0"]}}}
    assert load_task(write(tmp_path, IOI)).default_model is None


def test_dot_paths_in_a_task_file_are_relative_to_it(tmp_path) -> None:
    text = IOI.replace("seed = 3", 'seed = 3\nmodel = "../models/m"\ntranscoders = "./tc"')
    (tmp_path / "tasks").mkdir()
    spec = load_task(write(tmp_path / "tasks", text))
    assert spec.default_model == str(tmp_path / "models" / "m")
    assert spec.default_transcoders == str(tmp_path / "tasks" / "tc")


def _edit(old: str, new: str, base: str = IOI) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


BAD_FILES = {
    "unknown key": (
        _edit("seed = 3", "seed = 3\ncolour = 1"),
        "task.toml: [task] colour: unknown key; expected one of name,",
    ),
    "unknown section": (IOI + "\n[extras]\na = 1\n", "task.toml: [extras]: unknown section"),
    "unknown filler form": (
        _edit('S = { same_as = "IO" }', 'S = { sameas = "IO" }'),
        "task.toml: [fillers] S sameas: unknown key; expected one of range, same_as",
    ),
    "missing fields": (
        _edit('metric = "logit_diff"\ncount = 8\n', ""),
        "task.toml: [task]: missing metric, count; add them",
    ),
    "missing section": (IOI.split("[prompts]")[0], "task.toml: missing section(s) [prompts]"),
    "wrong type": (_edit("count = 8", 'count = "8"'), "task.toml: [task] count: must be an"),
    "unknown metric": (
        _edit('metric = "logit_diff"', 'metric = "accuracy"'),
        "task.toml: [task] metric: unknown metric 'accuracy'; use one of logit_diff, prob_diff,",
    ),
    "undefined placeholder": (
        _edit("gave a {OBJECT} to", "gave a {OBJECT} {WHERE} to"),
        "task.toml: [prompts] template: placeholder {WHERE} has no filler; add WHERE",
    ),
    "unused filler": (
        _edit('OBJECT = ["drink", "book"]', 'OBJECT = ["drink", "book"]\nOBJEKT = ["x"]'),
        "task.toml: [fillers] OBJEKT: not used by the template",
    ),
    "filler cycle": (
        _edit('PLACE = ["store", "park"]', 'PLACE = ["store", "{OBJECT} park"]').replace(
            'OBJECT = ["drink", "book"]', 'OBJECT = ["drink", "{PLACE}"]'
        ),
        "refers to itself (",
    ),
    "corrupt changes text": (
        _edit("{C} gave a {OBJECT} to", "{C} handed a {OBJECT} to"),
        "task.toml: [prompts] corrupt: must keep the template's text outside placeholders",
    ),
    "wrong missing": (_edit('wrong = [" {S}"]\n', ""), "[prompts] wrong: metric logit_diff needs"),
    "bad role": (_edit('S2 = "S#2"', 'S2 = "S-2"'), "task.toml: [roles] S2: 'S-2' is not FILLER"),
    "role of no filler": (
        _edit('S2 = "S#2"', 'S2 = "T#2"'),
        "task.toml: [roles] S2: T is not a filler",
    ),
    "END role": (_edit('S2 = "S#2"', 'END = "S#2"'), "task.toml: [roles] END: is implicit"),
    "bad range": (
        _edit('PLACE = ["store", "park"]', 'PLACE = { range = "9..1" }'),
        "task.toml: [fillers] PLACE range: range '9..1' is empty",
    ),
    "invalid toml": ("[task\n", "task.toml: not valid TOML"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_a_one_line_error_naming_the_key(case, tmp_path) -> None:
    text, expected = BAD_FILES[case]
    with pytest.raises(TaskFileError) as info:
        load_task(write(tmp_path, text))
    message = str(info.value)
    assert expected in message
    assert message.startswith(str(tmp_path / "task.toml")) and "\n" not in message


def test_missing_file_is_an_error(tmp_path) -> None:
    with pytest.raises(TaskFileError, match="no such task file"):
        load_task(tmp_path / "nope.toml")


def build_error(tmp_path: Path, text: str, tokenizer, **kwargs) -> str:
    with pytest.raises(TaskFileError) as info:
        build(tmp_path, text, tokenizer, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_multi_token_answer_names_the_word_and_its_pieces(tmp_path, tokenizer) -> None:
    message = build_error(tmp_path, _edit('"Bob"]', '"Bob", "Zelda"]'), tokenizer)
    pieces = [tokenizer.decode([i]) for i in tokenizer.encode(" Zelda")]
    assert len(pieces) > 1
    assert "[prompts] answers: ' Zelda' is" in message
    assert f"' Zelda' -> {pieces}" in message


def test_too_long_prompt_names_the_prompt_and_both_lengths(tmp_path, tokenizer) -> None:
    message = build_error(tmp_path, IOI, tokenizer, n_ctx=10)
    assert "[prompts] template: prompt 0 'When " in message
    assert "(with BOS), more than the model's n_ctx = 10" in message
    first = build(tmp_path, IOI, tokenizer).prompts[0]
    assert f"is {len(first.tokens)} tokens" in message


def test_misaligned_corruption_names_the_prompt(tmp_path, tokenizer) -> None:
    text = _edit('C = { same_as = "IO" }', 'C = ["Zelda"]')
    message = build_error(tmp_path, text, tokenizer)
    assert "[prompts] corrupt: prompt 0 'When" in message
    assert "its corruption 'When" in message and "Zelda" in message


def test_shifted_placeholder_in_corruption_is_caught(tmp_path, tokenizer) -> None:
    # same total length, but the corrupt name takes one token more and the object one less
    text = _edit('C = { same_as = "IO" }', 'C = ["Zelda"]').replace(
        'OBJECT = ["drink", "book"]', 'OBJECT = ["drink"]'
    )
    text = text.replace("{C} gave a {OBJECT} to", "{C} gave a {OBJECT2} to").replace(
        'OBJECT = ["drink"]', 'OBJECT = ["drink"]\nOBJECT2 = ["d"]'
    )
    message = build_error(tmp_path, text, tokenizer)
    assert "[prompts] corrupt: prompt 0" in message


def test_distinct_groups_larger_than_the_values_fail(tmp_path, tokenizer) -> None:
    message = build_error(tmp_path, _edit('"Alice", "Bob"]', "]"), tokenizer)
    assert "[prompts] corrupt: prompt 0: cannot draw C: each of its 2 values is taken" in message


def test_role_that_does_not_occur_names_the_prompt(tmp_path, tokenizer) -> None:
    message = build_error(tmp_path, _edit('S2 = "S#2"', 'S2 = "S#3"'), tokenizer)
    assert "[roles] S2: S#3 does not occur in prompt 0 'When" in message


def random_logits(n_pos: int, d_vocab: int) -> torch.Tensor:
    return torch.randn(n_pos, d_vocab, dtype=torch.float64) * 3


def test_logit_diff_target_value_equals_the_metric(tmp_path, tokenizer) -> None:
    prompts = build(tmp_path, IOI, tokenizer)
    for prompt in prompts.prompts[:3]:
        logits = random_logits(len(prompt.tokens), len(tokenizer))
        target = prompts.target(logits, prompt)
        assert target.pos == prompt.position
        value = prompts.metric_value(logits[prompt.position], prompt)
        expected = (
            logits[prompt.position, prompt.answers[0]] - logits[prompt.position, prompt.wrong[0]]
        )
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(target.value(logits), value, rtol=0, atol=1e-12)
        assert target.name == f"logit_diff( {prompt.fillers['IO']} -  {prompt.fillers['S']})"


def test_logit_diff_over_token_sets_is_a_difference_of_means() -> None:
    logits = random_logits(4, 50)
    metric = METRICS["logit_diff"]
    value = metric.value(logits[2], [1, 2, 3], [7, 8])
    torch.testing.assert_close(value, logits[2, 1:4].mean() - logits[2, 7:9].mean())
    target = metric.target(logits, [1, 2, 3], [7, 8], 2, "t")
    torch.testing.assert_close(target.value(logits), value, rtol=0, atol=1e-12)


def test_logit_is_the_mean_logit_of_the_answers_and_its_own_target() -> None:
    logits = random_logits(4, 50)
    metric = METRICS["logit"]
    assert not metric.needs_wrong
    value = metric.value(logits[3], [4, 9], [])
    torch.testing.assert_close(value, logits[3, [4, 9]].mean())
    target = metric.target(logits, [4, 9], [], 3, "t")
    torch.testing.assert_close(target.value(logits), value, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["prob_diff", "logprob"])
def test_nonlinear_targets_are_the_metric_gradient(name, tmp_path, tokenizer) -> None:
    prompts = build(tmp_path, YEARS, tokenizer)
    prompt = prompts.prompts[0]
    metric = METRICS[name]
    logits = random_logits(len(prompt.tokens), len(tokenizer))
    x = logits[prompt.position].clone().requires_grad_(True)
    metric.value(x, prompt.answers, prompt.wrong).backward()
    assert x.grad is not None
    target = metric.target(logits, prompt.answers, prompt.wrong, prompt.position, name)
    assert target.pos == prompt.position
    torch.testing.assert_close(target.direction, x.grad, rtol=1e-9, atol=1e-12)


def test_prob_diff_is_answer_minus_wrong_probability(tmp_path, tokenizer) -> None:
    prompts = build(tmp_path, YEARS, tokenizer)
    prompt = prompts.prompts[0]
    logits = random_logits(len(prompt.tokens), len(tokenizer))
    probs = logits[prompt.position].softmax(-1)
    expected = probs[prompt.answers].sum() - probs[prompt.wrong].sum()
    value = prompts.metric_value(logits[prompt.position], prompt)
    torch.testing.assert_close(value, expected)
    with torch.no_grad():  # the target differentiates on its own
        target = prompts.target(logits, prompt)
    assert target.name == f"prob_diff({len(prompt.answers)} tokens - {len(prompt.wrong)} tokens)"


def test_position_names_the_role_the_metric_reads(tmp_path, tokenizer) -> None:
    text = _edit('distinct = [["IO", "S", "C"]]', 'distinct = [["IO", "S", "C"]]\nposition = "S1"')
    prompts = build(tmp_path, text, tokenizer)
    for prompt in prompts.prompts:
        assert prompt.position == prompt.roles["S1"] < prompt.roles["END"]
        assert (
            prompts.target(random_logits(len(prompt.tokens), len(tokenizer)), prompt).pos
            == prompt.position
        )
    with pytest.raises(TaskFileError, match=r"\[prompts\] position: 'S3' is not a role; name one"):
        load_task(write(tmp_path, text.replace('position = "S1"', 'position = "S3"')))


def test_case_key_that_no_placeholder_uses_is_an_error(tmp_path) -> None:
    cases = '[[prompts.cases]]\nIO = "Mary"\nSS = "John"\n'
    with pytest.raises(TaskFileError, match=r"\[prompts\] cases\[0\] SS: not used by the template"):
        load_task(write(tmp_path, f"{IOI}\n{cases}"))


def test_readme_example_builds(tmp_path, tokenizer) -> None:
    readme = (Path(__file__).resolve().parents[2] / "tasks" / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    prompts = build(tmp_path, example, tokenizer)
    assert prompts.roles[-1] == "END" and len(prompts) == prompts.spec.count
    assert prompts.spec.ground_truth["gpt2"]["heads"]["name_mover"] == ["9.9", "10.0", "9.6"]
