"""`transcoders export`: write a transcoder set in another tool's format (circuit-tracer)."""

import argparse
from pathlib import Path

EPILOG = """examples:
  transcoders export --transcoders circuits/zoo/models/tiny/transcoders \\
      --format circuit-tracer --out /tmp/tiny-ct
  circuits run tasks/ioi.toml --transcoders /tmp/tiny-ct      the exported set, read back

--transcoders takes a set in any format `circuits run --transcoders` reads (docs/formats.md).
circuit-tracer's TopK keeps a negative value among the k largest where this project's topk
zeroes it: the two agree wherever the k-th largest pre-activation is positive.
"""

FORMATS = ("circuit-tracer",)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="write a transcoder set in another tool's format",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--transcoders", required=True, help="the set to write (a directory or hub name)"
    )
    parser.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="format to write")
    parser.add_argument("--out", type=Path, required=True, help="new output directory")
    parser.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from transcoders.formats import load_any
    from transcoders.formats.export import export

    tset = load_any(args.transcoders)
    out = export(tset, args.format, args.out)
    print(f"wrote {out}/ ({args.format}, {tset.n_layers} layers of {tset.model})")
    return 0
