"""`circuits`: the command-line entry point. Subcommands live one per module in this package."""

import argparse
import sys
from collections.abc import Sequence

from circuits.arguments import run_command
from circuits.cli import compare, corpus, features, models, reference, run, tasks, view, zoo

EPILOG = """examples:
  circuits run tasks/ioi.toml       the IOI circuit of the shipped model -> out/ioi/
  circuits view out/ioi --serve     its interactive page (graph.html), served on 127.0.0.1
  circuits compare out/ioi-tiny out/ioi-small  one task's circuits on two models side by side
  circuits reference tasks/ioi.toml --model zoo:small   measure the causal reference circuit
  circuits zoo list                 the zoo's models, their sizes and task scores
  circuits zoo eval default --json  task scores of the shipped model on held-out prompts
  circuits zoo train small          train a bigger zoo model (resumes if interrupted)
  circuits models add smollm2-135m  add a real pretrained model -> --model zoo:smollm2-135m
  circuits corpus build             build the training corpus and its tokenizer
  circuits tasks check tasks/*.toml check task files: build every file's prompts
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circuits",
        description="Find the circuits behind a behaviour of a transformer language model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.add_parser(commands)
    view.add_parser(commands)
    zoo.add_parser(commands)
    corpus.add_parser(commands)
    features.add_parser(commands)
    tasks.add_parser(commands)
    compare.add_parser(commands)
    reference.add_parser(commands)
    models.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv, interrupted="interrupted")


if __name__ == "__main__":
    sys.exit(main())
