"""`transcoders`: the command-line entry point for transcoder sets."""

import argparse
import sys
from collections.abc import Sequence

from transcoders.activations import ACTIVATIONS

EPILOG = """examples:
  transcoders kinds                  the activation kinds a transcoder can use
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transcoders",
        description="Train, evaluate, save and load transcoders for a model's MLP layers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    kinds = commands.add_parser(
        "kinds",
        help="list the activation kinds",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds.set_defaults(run=run_kinds)
    return parser


def run_kinds(args: argparse.Namespace) -> int:
    for kind in ACTIVATIONS.values():
        print(f"{kind.name:<10} {kind.summary}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
