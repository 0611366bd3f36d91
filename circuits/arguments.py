"""What the two command lines share: argument types (a bad value is a usage error, exit 2, that
names the flag's expected range, raised by the parser before any work starts) and the way a
subcommand is run and its errors reported."""

import argparse
import logging
import sys
from collections.abc import Sequence

from circuits.errors import CircuitsError, one_line


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, sizes, steps)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def unit_fraction(text: str) -> float:
    """A share in (0, 1]."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from err
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value:g}")
    return value


def add_threads(parser: argparse.ArgumentParser, *, default: int | None = 1) -> None:
    """`--threads N`: torch's intra-op threads."""
    shown = "torch's choice; 1 on a busy machine" if default is None else f"{default}"
    parser.add_argument(
        "--threads", type=positive_int, default=default, help=f"torch threads (default: {shown})"
    )


def run_command(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, interrupted: str
) -> int:
    """Parse `argv`, set up logging (`--debug`: debug level and tracebacks) and run the chosen
    subcommand; a CircuitsError is one line on stderr (exit 1), an interrupt `interrupted`
    (exit 130)."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args)
    except CircuitsError as err:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: {interrupted}", file=sys.stderr)
        return 130
