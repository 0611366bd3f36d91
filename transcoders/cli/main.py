"""`transcoders`: the command-line entry point. Subcommands live one per module in this package."""

import argparse
import sys
from collections.abc import Sequence

from circuits.arguments import run_command
from transcoders.cli import evaluate, export, kinds, train

EPILOG = """examples:
  transcoders kinds                          the activation kinds a transcoder can use
  transcoders train --model zoo:tiny         train the set registered for the shipped model
  transcoders eval --model zoo:tiny          how well that set imitates the model's MLPs
  transcoders eval --model zoo:tiny --transcoders /tmp/tc --json
  transcoders export --transcoders /tmp/tc --format circuit-tracer --out /tmp/tc-ct
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transcoders",
        description="Train, evaluate, save and load transcoders for a model's MLP layers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    kinds.add_parser(commands)
    train.add_parser(commands)
    evaluate.add_parser(commands)
    export.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        build_parser(), argv, interrupted="interrupted (run the same command again to resume)"
    )


if __name__ == "__main__":
    sys.exit(main())
