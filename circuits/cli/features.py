"""`circuits features`: readable descriptions of transcoder features, from a cached atlas."""

import argparse
import json
from pathlib import Path
from typing import Any

from circuits.arguments import positive_int

EPILOG = """examples:
  circuits features build --model zoo:tiny              scan held-out text once, cache the atlas
  circuits features describe --model zoo:tiny --layer 1 --feature 42
  circuits features describe --model zoo:tiny --layer 0 --feature 7 --json
  circuits features build --model zoo:tiny --transcoders /tmp/tc --n-tokens 16384 --rebuild

A description lists the contexts where the feature fires most (the active token «marked»), the
tokens its decoder row promotes and suppresses through the unembedding (logit lens), the tokens
whose embeddings drive it directly, and a short label: `says "X"` when one promoted token stands
out, else `on "Y"`, the token it fires on most often among its top contexts.
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = commands.add_parser(
        "features", help="describe transcoder features", epilog=EPILOG, formatter_class=fmt
    )
    sub = parser.add_subparsers(dest="features_command", required=True, metavar="COMMAND")
    build = sub.add_parser(
        "build",
        help="scan held-out text and cache the descriptions of every feature",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    _add_atlas_arguments(build)
    build.add_argument(
        "--rebuild", action="store_true", help="scan again even if the atlas is cached"
    )
    build.set_defaults(run=run_build)

    describe = sub.add_parser(
        "describe", help="print the description of one feature", epilog=EPILOG, formatter_class=fmt
    )
    _add_atlas_arguments(describe)
    describe.add_argument("--layer", type=int, required=True, help="layer of the feature")
    describe.add_argument("--feature", type=int, required=True, help="index of the feature")
    describe.add_argument("--json", action="store_true", help="print JSON for machines")
    describe.set_defaults(run=run_describe, rebuild=False)


def _add_atlas_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="zoo:default", help="model spec (default: %(default)s)")
    parser.add_argument(
        "--transcoders", type=Path, help="set directory (default: <model dir>/transcoders)"
    )
    parser.add_argument(
        "--n-tokens",
        type=positive_int,
        default=65_536,  # ScanSettings.n_tokens; a test keeps them equal
        help="held-out tokens to scan (default: %(default)s)",
    )
    parser.add_argument(
        "--top-k",
        type=positive_int,
        default=8,  # ScanSettings.top_k
        help="top contexts kept per feature (default: %(default)s)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar while scanning (default: on)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch threads (default: %(default)s: on a shared 2-core machine a second thread "
        "made the scan 5x slower)",
    )


def _atlas(args: argparse.Namespace, key: tuple[int, int] | None = None) -> Any:
    """The atlas of the set the arguments name; `key` (layer, feature) is checked before any
    scan."""
    import torch

    from circuits.features import load_or_build_atlas
    from circuits.features.atlas import check_key
    from circuits.models import load_model
    from transcoders.transcoder_set import default_transcoders_dir, load_transcoder_set, model_id

    torch.set_num_threads(args.threads)
    path = args.transcoders or default_transcoders_dir(args.model)
    bridge = load_model(args.model)
    tset = load_transcoder_set(path, bridge=bridge, model=model_id(args.model))
    if key is not None:
        check_key(key, [t.config.d_transcoder for t in tset])
    return load_or_build_atlas(
        args.model,
        bridge,
        tset,
        path,
        n_tokens=args.n_tokens,
        top_k=args.top_k,
        progress=args.progress,
        rebuild=args.rebuild,
    )


def run_build(args: argparse.Namespace) -> int:
    atlas = _atlas(args)
    scan = atlas.scan
    size = sum(f.stat().st_size for f in atlas.path.iterdir()) if atlas.path else 0
    print(
        f"feature atlas: {scan.n_scanned:,} tokens scanned in {scan.seconds:.1f} s, "
        f"{size / 1e6:.2f} MB at {atlas.path}"
    )
    for layer, found in enumerate(scan.layers):
        never = (found.n_active == 0).float().mean().item()
        mean_rate = found.n_active.double().mean().item() / scan.n_scanned
        print(
            f"  layer {layer}: {found.n_active.shape[0]} features, {never:.1%} never active, "
            f"mean frequency {mean_rate:.3%}"
        )
    return 0


def run_describe(args: argparse.Namespace) -> int:
    from circuits.features.render import render_description

    key = (args.layer, args.feature)
    description = _atlas(args, key)[key]
    if args.json:
        print(json.dumps(description.to_json(), indent=2, ensure_ascii=False))
    else:
        print(render_description(description))
    return 0
