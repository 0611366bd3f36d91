"""`circuits corpus`: build the training corpus shared by the zoo models."""

import argparse
import dataclasses
from pathlib import Path

from circuits.corpus.build import CorpusConfig, build_corpus, corpus_dir

EPILOG = """examples:
  circuits corpus build                      the zoo's corpus (100M chars, seed 0)
  circuits corpus build --seed 1 --n-chars 2000000 --out /tmp/corpus
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "corpus",
        help="build the training corpus",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="corpus_command", required=True, metavar="COMMAND")
    build = sub.add_parser(
        "build",
        help="build text, tokenizer and token arrays",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("--seed", type=int, default=CorpusConfig.seed, help="builder seed")
    build.add_argument(
        "--n-chars",
        type=int,
        default=CorpusConfig.n_chars,
        help="characters of text (default: %(default)s)",
    )
    build.add_argument("--out", help="output directory (default: the cache, see `zoo path`)")
    build.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    config = dataclasses.replace(CorpusConfig(), seed=args.seed, n_chars=args.n_chars)
    out = build_corpus(config, Path(args.out) if args.out else corpus_dir(config))
    print(f"corpus written to {out}")
    return 0
