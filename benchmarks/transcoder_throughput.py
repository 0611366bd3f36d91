"""Transcoder throughput on this machine: harvesting, training steps, and a default run.

    python -m benchmarks.transcoder_throughput                      # zoo:tiny, default sizes
    python -m benchmarks.transcoder_throughput --threads 1 2        # compare thread counts
    python -m benchmarks.transcoder_throughput --full-run           # also time `transcoders train`

Harvest throughput counts token rows (MLP in/out of every layer) per second through the bridge;
training throughput counts token rows per second through `train_step` (all layers, one Adam
step per batch) on activations harvested beforehand. The wall time of a default run is
estimated from the two (they alternate in one process); `--full-run` measures it. Results go
to benchmarks/results/ as JSON and markdown, with the commit and the machine.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.environment import commit, machine, write_results
from circuits.corpus.build import corpus_dir, load_corpus_tokenizer
from circuits.corpus.tokenizer import END_OF_TEXT
from circuits.models import load_model
from circuits.zoo.train import document_starts
from transcoders.config import HarvestConfig, TrainConfig, default_config
from transcoders.corpus import (
    CorpusTokens,
    corpus_config_for,
    load_corpus_tokens,
    training_tokens,
    window_length,
)
from transcoders.harvest import Activations, harvest_chunk
from transcoders.train import fit_to_batch, init_state, train_step, train_transcoders
from transcoders.transcoder_set import model_id


def any_corpus(spec: str) -> CorpusTokens:
    """The cached corpus of `spec` without the tokenizer check (for speed only)."""
    path = corpus_dir(corpus_config_for(spec))
    eot = load_corpus_tokenizer(path).convert_tokens_to_ids(END_OF_TEXT)
    assert isinstance(eot, int)
    return CorpusTokens(
        train=np.load(path / "train.npy", mmap_mode="r"), val=np.load(path / "val.npy"), eot=eot
    )


def measure_harvest(bridge: Any, corpus: Any, seq_len: int, n_tokens: int) -> float:
    """Token rows per second of `harvest_chunk` (one warm-up chunk not counted)."""
    config = HarvestConfig(seq_len=seq_len, buffer_tokens=min(n_tokens, 32_768))
    starts = document_starts(corpus.train, corpus.eot, seq_len)
    harvest_chunk(bridge, corpus.train, starts, config, 0)
    rows, start = 0, time.perf_counter()
    chunk = 1
    while rows < n_tokens:
        rows += len(harvest_chunk(bridge, corpus.train, starts, config, chunk).mlp_in)
        chunk += 1
    return rows / (time.perf_counter() - start)


def measure_training(
    bridge: Any, corpus: Any, args: argparse.Namespace, seq_len: int
) -> dict[str, float]:
    """Token rows per second of `train_step` on pre-harvested activations."""
    n_rows = args.batch_size * min(args.train_steps, 16)
    config = HarvestConfig(seq_len=seq_len, buffer_tokens=n_rows)
    starts = document_starts(corpus.train, corpus.eot, seq_len)
    acts = harvest_chunk(bridge, corpus.train, starts, config, 0)
    transcoder = default_config(
        kind=args.kind, d_model=bridge.cfg.d_model, d_transcoder=args.d_transcoder, k=args.k
    )
    train = TrainConfig(batch_size=args.batch_size, harvest=config)
    state = init_state(bridge, transcoder, model="benchmark", seed=0)
    fit_to_batch(state, acts)

    def batch(i: int) -> Activations:
        rows = slice((i % 16) * args.batch_size, (i % 16 + 1) * args.batch_size)
        return Activations(mlp_in=acts.mlp_in[rows], mlp_out=acts.mlp_out[rows])

    for i in range(3):  # warm-up
        train_step(state, batch(i), train)
    start = time.perf_counter()
    for i in range(args.train_steps):
        train_step(state, batch(i), train)
    seconds = time.perf_counter() - start
    return {
        "tokens_per_s": args.train_steps * args.batch_size / seconds,
        "d_transcoder": transcoder.d_transcoder,
        "k": transcoder.k or 0,
    }


def full_run(bridge: Any, corpus: Any, args: argparse.Namespace, seq_len: int) -> dict:
    """Wall time of `train_transcoders` with the default configuration (but --tokens)."""
    transcoder = default_config(kind=args.kind, d_model=bridge.cfg.d_model)
    config = TrainConfig(n_tokens=args.tokens, harvest=HarvestConfig(seq_len=seq_len))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = train_transcoders(
            bridge,
            corpus.train,
            transcoder,
            config,
            out=Path(tmp) / "set",
            work=Path(tmp) / "work",
            model=model_id(args.model),
            eot=corpus.eot,
            val_tokens=corpus.val,
        )
        wall = time.perf_counter() - start
        assert out is not None
        summary = json.loads((out / "config.json").read_text())["training"]
    return {"wall_time_s": wall, "val": summary.get("val")}


def render(report: dict[str, Any]) -> str:
    lines = [
        f"# Transcoder throughput: {report['model']} (commit {report['commit']})",
        "",
        f"{report['machine']['cpu']}, {report['machine']['cores']} cores, load average "
        f"{report['machine']['load_average_1_5_15']}, torch {report['machine']['torch']}",
        "",
        "| threads | harvest tok/s | train tok/s | est. default run (min) |",
        "|---|---|---|---|",
    ]
    for row in report["runs"]:
        lines.append(
            f"| {row['threads']} | {row['harvest_tokens_per_s']:,.0f} | "
            f"{row['train_tokens_per_s']:,.0f} | {row['estimated_default_run_s'] / 60:.1f} |"
        )
    lines.append("")
    lines.append(
        f"Training: kind {report['kind']}, d_transcoder {report['d_transcoder']}, k {report['k']}, "
        f"batch {report['batch_size']}, windows of {report['seq_len']} tokens; "
        f"default run = {report['tokens']:,} tokens."
    )
    if "full_run" in report:
        run = report["full_run"]
        lines.append(f"Measured default run: {run['wall_time_s'] / 60:.1f} min; val {run['val']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:tiny")
    parser.add_argument("--kind", default="topk")
    parser.add_argument("--d-transcoder", type=int)
    parser.add_argument("--k", type=int)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--harvest-tokens", type=int, default=65_536)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument(
        "--tokens",
        type=int,
        help="default run size (default: the model's `transcoders train` count)",
    )
    parser.add_argument("--full-run", action="store_true", help="also time a default run")
    parser.add_argument(
        "--any-corpus",
        action="store_true",
        help="use the cached default corpus even if its tokenizer is not the model's (token "
        "identities do not change the speed; the numbers of --full-run then mean nothing)",
    )
    args = parser.parse_args()
    args.tokens = training_tokens(args.tokens, args.model)

    bridge = load_model(args.model)
    corpus = any_corpus(args.model) if args.any_corpus else load_corpus_tokens(args.model, bridge)
    seq_len = window_length(args.model, bridge)
    report: dict[str, Any] = {
        "model": model_id(args.model),
        "commit": commit(),
        "machine": machine(),
        "kind": args.kind,
        "batch_size": args.batch_size,
        "tokens": args.tokens,
        "seq_len": seq_len,
        "any_corpus": args.any_corpus,
        "runs": [],
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        harvest = measure_harvest(bridge, corpus, seq_len, args.harvest_tokens)
        train = measure_training(bridge, corpus, args, seq_len)
        report.update(d_transcoder=train["d_transcoder"], k=train["k"])
        estimate = args.tokens / harvest + args.tokens / train["tokens_per_s"]
        report["runs"].append(
            {
                "threads": threads,
                "harvest_tokens_per_s": harvest,
                "train_tokens_per_s": train["tokens_per_s"],
                "estimated_default_run_s": estimate,
            }
        )
        print(json.dumps(report["runs"][-1]))
    if args.full_run:
        torch.set_num_threads(args.threads[0])
        report["full_run"] = full_run(bridge, corpus, args, seq_len)
    stem = write_results("transcoder_throughput", report, render(report))
    print(render(report))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
