"""`circuits tasks`: check task files and show the prompts they build."""

import argparse
import json
import sys
from pathlib import Path

EPILOG = """examples:
  circuits tasks show tasks/ioi.toml                 the first prompts, their roles and answers
  circuits tasks show tasks/greater_than.toml --count 5 --model zoo:small
  circuits tasks check tasks/*.toml                  build every file's prompts; exit 1 on errors

A task file is TOML: [task], [prompts], [fillers], [roles], [ground_truth.<model>]; the format
is described in tasks/README.md. Prompts are built with the tokenizer of --model, else of the
file's `model`, else of zoo:default.
"""

FALLBACK_MODEL = "zoo:default"


def add_parser(commands: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = commands.add_parser(
        "tasks", help="check task files and show their prompts", epilog=EPILOG, formatter_class=fmt
    )
    sub = parser.add_subparsers(dest="tasks_command", required=True, metavar="COMMAND")

    show = sub.add_parser(
        "show", help="show a task's first prompts", epilog=EPILOG, formatter_class=fmt
    )
    show.add_argument("task", type=Path, help="task file (TOML)")
    show.add_argument("--model", help="model spec whose tokenizer builds the prompts")
    show.add_argument(
        "--count", type=_count, default=3, help="prompts to show (default: 3, at most 10,000)"
    )
    show.set_defaults(run=run_show)

    check = sub.add_parser(
        "check",
        help="build every file's prompts; exit 1 if one fails",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    check.add_argument("tasks", type=Path, nargs="+", help="task files (TOML)")
    check.add_argument("--model", help="model spec whose tokenizer builds the prompts")
    check.set_defaults(run=run_check)


def _count(text: str) -> int:
    """A number of prompts: a positive integer, at most `circuits.tasks.spec.MAX_COUNT`."""
    from circuits.errors import TaskFileError
    from circuits.tasks.spec import check_count

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    try:
        return check_count(int(text))
    except TaskFileError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def tokenizer_and_n_ctx(spec: str):
    """A model's tokenizer and context length, without loading its weights."""
    from transformers import AutoConfig, AutoTokenizer

    from circuits.errors import ModelSpecError
    from circuits.models import load_tokenizer, resolve_model_dir

    model_dir = resolve_model_dir(spec)
    try:
        config = AutoConfig.from_pretrained(model_dir or spec)
        tokenizer = load_tokenizer(model_dir) if model_dir else AutoTokenizer.from_pretrained(spec)
    except OSError as err:
        raise ModelSpecError(
            f"cannot load the tokenizer of {spec!r} ({err.__class__.__name__}); with no network, "
            "pass a local model directory or a zoo model (`circuits zoo list`)"
        ) from err
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        if isinstance(getattr(config, key, None), int):
            return tokenizer, getattr(config, key)
    raise ModelSpecError(f"the config of {spec!r} names no context length (n_positions)")


def _build(path: Path, model: str | None, count: int | None = None):
    from circuits.tasks import build_prompt_set, load_task

    spec = load_task(path)
    model = model or spec.default_model or FALLBACK_MODEL
    tokenizer, n_ctx = tokenizer_and_n_ctx(model)
    count = None if count is None else max(count, spec.count)
    return build_prompt_set(spec, tokenizer, n_ctx=n_ctx, count=count), tokenizer, model


def _pieces(tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def _words(words: list[str], limit: int = 6) -> str:
    shown = " ".join(json.dumps(w) for w in words[:limit])
    return shown + (f" ... ({len(words)} tokens)" if len(words) > limit else "")


def run_show(args: argparse.Namespace) -> int:
    prompts, tokenizer, model = _build(args.task, args.model, args.count)
    spec = prompts.spec
    print(f"{args.task}: task {spec.name!r}, metric {spec.metric}, {spec.count} prompts, {model}")
    print(f"  {spec.description}")
    print(f"  role order: {' '.join(prompts.roles)}; the metric reads position {spec.position}")
    for i, prompt in enumerate(prompts.prompts[: args.count]):
        pieces = _pieces(tokenizer, prompt.tokens)
        corrupt = _pieces(tokenizer, prompt.corrupt_tokens)
        changed = [
            f"{pos}: {json.dumps(a)} -> {json.dumps(b)}"
            for pos, (a, b) in enumerate(zip(pieces, corrupt, strict=True))
            if a != b
        ]
        roles = [f"{r}={p} {json.dumps(pieces[p])}" for r, p in prompt.roles.items()]
        print(f"\nprompt {i} ({len(prompt.tokens)} tokens)")
        print(f"  clean:   {prompt.text}")
        print(f"  corrupt: {prompt.corrupt_text}")
        print(f"  tokens:  {'|'.join(pieces)}")
        print(f"  changed: {', '.join(changed) or 'nothing'}")
        print(f"  roles:   {', '.join(roles)}")
        print(f"  answers: {_words(prompt.answer_words)}")
        if prompt.wrong_words:
            print(f"  wrong:   {_words(prompt.wrong_words)}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from circuits.errors import CircuitsError

    failed = 0
    for path in args.tasks:
        try:
            prompts, _, model = _build(path, args.model)
        except CircuitsError as err:
            print(f"circuits: error: {err}", file=sys.stderr)
            failed += 1
            continue
        longest = max(len(p.tokens) for p in prompts.prompts)
        print(
            f"ok {path}: {len(prompts)} prompts for {model}, up to {longest} tokens, metric "
            f"{prompts.spec.metric}, roles {' '.join(prompts.roles)}"
        )
    return 1 if failed else 0
