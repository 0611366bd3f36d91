"""Argument types shared by the subcommands: a bad value is a usage error (exit 2) that names
the flag's expected range, raised by the parser before any work starts."""

import argparse


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
