"""`transcoders kinds`: list the activation kinds a transcoder can use."""

import argparse

from transcoders.activations import ACTIVATIONS

EPILOG = """examples:
  transcoders kinds                  the activation kinds a transcoder can use
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "kinds",
        help="list the activation kinds",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run_kinds)


def run_kinds(args: argparse.Namespace) -> int:
    for kind in ACTIVATIONS.values():
        print(f"{kind.name:<10} {kind.summary}")
    return 0
