"""`transcoders train`: train one transcoder per MLP layer of a model, resumably."""

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from circuits.arguments import add_threads, positive_int
from transcoders.activations import ACTIVATIONS
from transcoders.config import (
    DEFAULT_EXPANSION,
    SPARSITY_DEFAULTS,
    HarvestConfig,
    TrainConfig,
    TranscoderConfig,
)
from transcoders.transcoder_set import STORAGE_DTYPES

EPILOG = f"""examples:
  transcoders train --model zoo:tiny                      -> out/transcoders/tiny/
  transcoders train --model zoo:tiny --into-model         replace the set zoo:tiny registers
  transcoders train --model zoo:tiny --tokens 2000000 --out /tmp/tc
  transcoders train --model zoo:tiny --kind jumprelu --l0-coefficient 0.002 --out /tmp/jr
  transcoders train --model zoo:tiny --weights-dtype float16      half-size files, for shipping
  transcoders train --model zoo:tiny --resample-at 0.25,0.5 --dead-after-tokens 65536 --out /tmp/rs

Defaults: kind topk, k {SPARSITY_DEFAULTS["k"]:g}, d_transcoder {DEFAULT_EXPANSION} x d_model,
encoder biases centred on the first batch, the tokens a zoo model registers (zoo:small 8M),
else 4M.
An interrupted run resumes when the same command is run again (--fresh starts over); its
checkpoint lives in the cache (`$CIRCUITS_CACHE`, default ~/.cache/circuits).
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    parser = commands.add_parser(
        "train",
        help="train a transcoder set (resumes if interrupted)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="zoo:default", help="model spec (default: %(default)s)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        type=Path,
        help="output directory (default: out/transcoders/<model>/; use it as --transcoders DIR)",
    )
    where.add_argument(
        "--into-model",
        action="store_true",
        help="replace the set registered in the model's directory (<model dir>/transcoders), "
        "the one `circuits run` uses by default",
    )
    _add_transcoder_options(parser)
    _add_training_options(parser, defaults)
    add_threads(parser, default=None)
    parser.add_argument(
        "--weights-dtype",
        default="float32",
        choices=list(STORAGE_DTYPES),
        help="storage dtype of the saved weights (loaded back as float32)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="discard an existing checkpoint and start over"
    )
    parser.set_defaults(run=run_train, parser=parser)


def _add_transcoder_options(parser: argparse.ArgumentParser) -> None:
    """What each layer's transcoder is: kind, width, sparsity, skip path."""
    parser.add_argument("--kind", default="topk", choices=list(ACTIVATIONS), help="activation")
    parser.add_argument("--d-transcoder", type=positive_int, help="features per layer")
    parser.add_argument(
        "--k", type=positive_int, help="active features per token (topk, batchtopk)"
    )
    parser.add_argument("--l1-coefficient", type=float, help="L1 penalty weight (relu)")
    parser.add_argument("--l0-coefficient", type=float, help="L0 penalty weight (jumprelu)")
    parser.add_argument(
        "--skip", action=argparse.BooleanOptionalAction, default=False, help="linear skip path"
    )


def _add_training_options(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """How the set is trained: tokens, steps, rate, seed, dead features, buffer."""
    parser.add_argument(
        "--tokens",
        type=positive_int,
        help="training tokens (default: the zoo model's registered count, else "
        f"{defaults.n_tokens})",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=defaults.batch_size, help="tokens per step"
    )
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed (%(default)s)")
    parser.add_argument(
        "--dead-after-tokens",
        type=positive_int,
        default=defaults.dead_after_tokens,
        help="tokens without firing after which a feature counts as dead for AuxK and "
        "resampling (%(default)s)",
    )
    parser.add_argument(
        "--centered-init",
        action=argparse.BooleanOptionalAction,
        default=defaults.centered_init,
        help="start encoder biases so that pre-activations are centred on the first batch "
        "(default: on; off reproduces sets trained before it existed)",
    )
    parser.add_argument(
        "--resample-at",
        type=_fractions,
        default=defaults.resample_at,
        help="fractions of training after which dead features are re-initialised, e.g. "
        "0.25,0.5 (default: never; it set back FVU badly on small and medium: "
        "docs/transcoders.md)",
    )
    parser.add_argument(
        "--buffer-tokens",
        type=positive_int,
        default=defaults.harvest.buffer_tokens,
        help="token rows shuffled together (memory: rows x layers x 2 x d_model x 4 bytes)",
    )


def run_train(args: argparse.Namespace) -> int:
    import torch

    from circuits.models import load_model
    from circuits.paths import check_output_dir, model_slug
    from transcoders.corpus import load_corpus_tokens, window_length
    from transcoders.train import CHECKPOINT, default_work_dir, train_transcoders
    from transcoders.transcoder_set import KIND, default_transcoders_dir, model_id

    if args.into_model:
        out = default_transcoders_dir(args.model, must_exist=False)
    else:
        out = args.out or Path("out") / "transcoders" / model_slug(args.model)
    check_output_dir(out, kind=KIND)
    # the options are checked on the model's width from its config, before the model loads
    transcoder, config = _configs(
        args, d_model=model_width(args.model), seq_len=HarvestConfig().seq_len
    )
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    bridge = load_model(args.model)
    transcoder, config = _configs(
        args, d_model=bridge.cfg.d_model, seq_len=window_length(args.model, bridge)
    )
    work = default_work_dir(out)
    if args.fresh:
        shutil.rmtree(work / CHECKPOINT, ignore_errors=True)
    corpus = load_corpus_tokens(args.model, bridge)
    train_transcoders(
        bridge,
        corpus.train,
        transcoder,
        config,
        out=out,
        model=model_id(args.model),
        eot=corpus.eot,
        val_tokens=corpus.val,
        work=work,
        weights_dtype=args.weights_dtype,
    )
    summary = json.loads((out / "config.json").read_text())["training"]
    print(f"trained {dataclasses.asdict(transcoder)} -> {out}")
    print(
        f"{summary['tokens']:,} tokens in {summary['wall_time_s'] / 60:.1f} min "
        f"({summary['tokens_per_s']:,} tokens/s)"
    )
    if "val" in summary:
        for i, (fvu, l0) in enumerate(
            zip(summary["val"]["fvu"], summary["val"]["l0"], strict=True)
        ):
            print(f"layer {i}: held-out FVU {fvu:.4f}, L0 {l0:.1f}")
    if not args.into_model:
        print(f"use it with `circuits run TASK --model {args.model} --transcoders {out}`")
    return 0


def _configs(
    args: argparse.Namespace, *, d_model: int, seq_len: int
) -> tuple[TranscoderConfig, TrainConfig]:
    """The transcoder and training configs the options ask for; a bad value is a usage error."""
    from transcoders.config import default_config
    from transcoders.corpus import training_tokens

    try:
        transcoder = default_config(
            kind=args.kind,
            d_model=d_model,
            d_transcoder=args.d_transcoder,
            k=args.k,
            l1_coefficient=args.l1_coefficient,
            l0_coefficient=args.l0_coefficient,
            skip=args.skip,
        )
        config = TrainConfig(
            n_tokens=training_tokens(args.tokens, args.model),
            batch_size=args.batch_size,
            lr=args.lr,
            centered_init=args.centered_init,
            resample_at=args.resample_at,
            dead_after_tokens=args.dead_after_tokens,
            seed=args.seed,
            harvest=HarvestConfig(
                seed=args.seed, seq_len=seq_len, buffer_tokens=args.buffer_tokens
            ),
        )
    except ValueError as err:
        args.parser.error(str(err))
    return transcoder, config


def model_width(spec: str) -> int:
    """d_model of the model `spec`, read from its config alone (no weights loaded)."""
    from transformers import AutoConfig

    from circuits.errors import ModelSpecError
    from circuits.models import resolve_model_dir

    model_dir = resolve_model_dir(spec)
    try:
        config = AutoConfig.from_pretrained(model_dir or spec)
    except (OSError, ValueError) as err:
        raise ModelSpecError(f"cannot read the config of {spec!r}: {err}") from err
    return int(config.hidden_size)


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        message = f"expected fractions such as 0.25,0.5, got {text!r}"
        raise argparse.ArgumentTypeError(message) from err
