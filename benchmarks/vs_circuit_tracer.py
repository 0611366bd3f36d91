"""This engine against circuit-tracer 0.5.0 on the same model, transcoders and prompts.

    python -m benchmarks.vs_circuit_tracer                                # zoo:tiny and zoo:small
    python -m benchmarks.vs_circuit_tracer --models zoo:tiny --lengths 16 64 --threads 1 2
    python -m benchmarks.vs_circuit_tracer --ours-only --models zoo:smollm2-135m --random-k 32

circuit-tracer pins transformers <= 4.57.3 and TransformerLens <= 3.2.1, so it runs in its own
virtual environment, built on first use under the cache (`circuit-tracer-venv`): torch at this
environment's version first (from the local wheel where pip's find-links has one, so that no
CUDA build is fetched), then `circuit-tracer==0.5.0`. The model is the zoo model's own Hugging
Face directory (converted by TransformerLens' `convert_gpt2_weights` in circuit-tracer's
process, no folding or centring but the value biases, as its `from_pretrained` does); the
transcoder set is written in circuit-tracer's per-layer format (config.yaml and
layer_{i}.safetensors, by `transcoders.formats.circuit_tracer.export_circuit_tracer`). Its
0.5.0 loader reads only ReLU and JumpReLU layers, so a TopK set is loaded from those files into
its `SingleLayerTranscoder` with its own `TopK(k)` activation, followed by a ReLU where the
config says `topk_relu` (this project's topk zeroes negative values among the k largest).

Every run is a process of its own (peak RSS is the process's, the model included; `rss_before`
is after loading). Both compute the full graph (every edge; here `max_edges_per_row=None`)
explaining the same targets: circuit-tracer's top logits (10 at most, 0.95 of the probability)
as it defines them, the logit minus the mean logit, so this engine's targets are the
directions `e_t - 1/d_vocab`. Edges are compared after mapping its node order (features,
errors, tokens, logits) onto this one's; circuit-tracer's token nodes are the token embedding
alone (`hook_embed`, a learned position embedding is a constant), this engine's the embedding
with its position embedding; and circuit-tracer zeroes the error vectors at position 0, where
here they are nodes. Those two kinds of edge are reported apart; the agreement figure is over
every other edge (feature and error sources, feature and target rows). Results go to
benchmarks/results/.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

CT_VERSION = "0.5.0"
VENV_NAME = "circuit-tracer-venv"


# ---------------------------------------------------------------- circuit-tracer's side
# (runs under the other virtual environment: only torch, numpy and circuit-tracer there)


def ct_child(model_dir: str, tc_dir: str, tokens_file: str, threads: int, out: str) -> None:
    """Attribute the prompt in `tokens_file` with circuit-tracer; write its edges to `out`."""
    torch.set_num_threads(threads)
    from circuit_tracer import attribute
    from safetensors.torch import save_file

    model = _ct_model(model_dir, out)
    tset = _ct_transcoders(tc_dir, model.cfg)
    model._configure_replacement_model(tset)
    tokens = torch.tensor(json.loads(Path(tokens_file).read_text()), dtype=torch.long)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    graph = attribute(tokens, model, max_n_logits=10, desired_logit_prob=0.95, verbose=False)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    adjacency = graph.adjacency_matrix
    rows, cols = adjacency.nonzero(as_tuple=True)
    save_file(
        {
            "rows": rows.contiguous(),
            "cols": cols.contiguous(),
            "weights": adjacency[rows, cols].contiguous(),
            "active_features": graph.active_features.contiguous(),
            "selected_features": graph.selected_features.contiguous(),
            "tokens": graph.input_tokens.contiguous(),
            "logit_tokens": torch.tensor([int(t.vocab_idx) for t in graph.logit_targets]),
        },
        out,
    )
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_mb": peak,
                "rss_before_mb": before,
                "active_features": len(graph.active_features),
                "edges": len(rows),
                "n_nodes": adjacency.shape[0],
            }
        )
    )


def _ct_model(model_dir: str, out: str):
    """The zoo model as circuit-tracer's TransformerLens replacement model."""
    from circuit_tracer.replacement_model.replacement_model_transformerlens import (
        TransformerLensReplacementModel,
    )
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
    from transformers import AutoTokenizer, GPT2LMHeadModel, PreTrainedTokenizerFast

    hf = GPT2LMHeadModel.from_pretrained(model_dir, torch_dtype=torch.float32)
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer,
        d_model=c.n_embd,
        n_heads=c.n_head,
        d_head=c.n_embd // c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd,
        d_vocab=c.vocab_size,
        n_ctx=c.n_positions,
        act_fn=c.activation_function,
        normalization_type="LN",
        eps=c.layer_norm_epsilon,
        original_architecture="GPT2LMHeadModel",
        model_name=Path(model_dir).name,
        default_prepend_bos=False,
        device="cpu",
        dtype=torch.float32,
    )
    # TransformerLens reloads the tokenizer by its path: one saved in this transformers' format
    tokenizer_dir = Path(out).with_suffix(".tokenizer")
    PreTrainedTokenizerFast(
        tokenizer_file=str(Path(model_dir) / "tokenizer.json"),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    ).save_pretrained(tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = TransformerLensReplacementModel(cfg, tokenizer=tokenizer)
    model.load_and_process_state_dict(
        convert_gpt2_weights(hf, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=True,
    )
    del hf
    return model


def _ct_transcoders(tc_dir: str, cfg):
    """The exported set as circuit-tracer's TranscoderSet (its TopK built here: 0.5.0's loader
    reads ReLU and JumpReLU layers only)."""
    import yaml
    from circuit_tracer.transcoder.activation_functions import TopK
    from circuit_tracer.transcoder.single_layer_transcoder import (
        SingleLayerTranscoder,
        TranscoderSet,
        load_relu_transcoder,
    )
    from safetensors.torch import load_file

    config = yaml.safe_load((Path(tc_dir) / "config.yaml").read_text())
    # this project's topk is ReLU after the top k (`topk_relu`), circuit-tracer's keeps negative
    # values among them: its own TopK, then a ReLU, computes the transcoders exported
    activation = TopK(int(config.get("k") or 0))
    if config.get("topk_relu"):
        activation = torch.nn.Sequential(activation, torch.nn.ReLU())
    layers = {}
    for i in range(cfg.n_layers):
        path = str(Path(tc_dir) / f"layer_{i}.safetensors")
        if config.get("activation") == "topk":  # 0.5.0's loader knows ReLU and JumpReLU only
            weights = load_file(path)
            layer = SingleLayerTranscoder(
                cfg.d_model,
                weights["b_enc"].shape[0],
                activation,
                i,
                skip_connection="W_skip" in weights,
                dtype=torch.float32,
                device=torch.device("cpu"),
            )
            layer.load_state_dict(weights)
        else:
            layer = load_relu_transcoder(path, i, device=torch.device("cpu"))
        layers[i] = layer
    tset = TranscoderSet(
        layers,
        feature_input_hook=config["feature_input_hook"],
        feature_output_hook=config["feature_output_hook"],
        scan="benchmark",
    )
    return tset


# ---------------------------------------------------------------- this project's side


def venv_python(rebuild: bool = False) -> Path:
    """circuit-tracer's interpreter, its virtual environment built on first use."""
    from circuits.paths import cache_dir

    venv = cache_dir() / VENV_NAME
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import circuit_tracer, importlib.metadata as m; "
             f"assert m.version('circuit-tracer') == '{CT_VERSION}'"]  # fmt: skip
    if (
        not rebuild
        and python.exists()
        and subprocess.run(check, capture_output=True).returncode == 0
    ):
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    # this environment's torch first: circuit-tracer's pins would otherwise fetch a CUDA build
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run([*pip, f"circuit-tracer=={CT_VERSION}", "pyyaml"], check=True)
    subprocess.run(check, check=True)
    return python


def export(spec: str, out: Path, random_k: int | None) -> tuple[Path, Path]:
    """(model directory, circuit-tracer transcoder directory) for `spec`."""
    from circuits.models import load_model, resolve_model_dir
    from transcoders.formats.circuit_tracer import export_circuit_tracer

    model_dir = resolve_model_dir(spec)
    assert model_dir is not None, f"{spec} is not a local model"
    tc_dir = out / f"{spec.replace(':', '-')}-transcoders"
    if not (tc_dir / "config.yaml").exists():
        export_circuit_tracer(our_transcoders(spec, load_model(spec), random_k), tc_dir)
    return model_dir, tc_dir


def our_transcoders(spec: str, bridge: Any, random_k: int | None) -> Any:
    """The zoo set of `spec`, or (`random_k`) random TopK transcoders at 16x width: untrained,
    but with k features active per position they time the engine like a trained set."""
    from transcoders.transcoder_set import default_transcoders_dir, load_transcoder_set

    if random_k is None:
        return load_transcoder_set(default_transcoders_dir(spec), bridge=bridge)
    from transcoders.config import TranscoderConfig
    from transcoders.transcoder import Transcoder
    from transcoders.transcoder_set import TranscoderSet

    d_model, n_layers = bridge.cfg.d_model, bridge.cfg.n_layers
    config = TranscoderConfig(kind="topk", d_model=d_model, d_transcoder=16 * d_model, k=random_k)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        layers = [Transcoder(config) for _ in range(n_layers)]
    return TranscoderSet(layers, model=spec)


def ours_child(
    spec: str, tokens_file: str, threads: int, out: str, random_k: int | None, capped: bool
) -> None:
    """Attribute the prompt with this engine, for the targets circuit-tracer chose (or the top
    logits, demeaned the same way, when it did not run); write the edges to `out`."""
    torch.set_num_threads(threads)
    from safetensors.torch import save_file

    from circuits.attribution.attribute import AttributionConfig, attribute
    from circuits.attribution.replacement import ReplacementModel
    from circuits.attribution.targets import Target, top_logit_targets
    from circuits.models import load_model

    bridge = load_model(spec)
    model = ReplacementModel(bridge, our_transcoders(spec, bridge, random_k))
    tokens = torch.tensor(json.loads(Path(tokens_file).read_text()), dtype=torch.long)
    d_vocab = bridge.cfg.d_vocab
    chosen = Path(tokens_file).with_suffix(".targets.json")
    if chosen.exists():
        logit_tokens = json.loads(chosen.read_text())
    else:
        trace = model.trace(tokens)
        names = [str(i) for i in range(d_vocab)]
        top = top_logit_targets(trace.logits, names, max_count=10, cumulative_probability=0.95)
        logit_tokens = [int(t.token) for t in top if t.token is not None]
    targets = []
    for token in logit_tokens:
        direction = torch.full((d_vocab,), -1.0 / d_vocab)
        direction[token] += 1
        targets.append(Target(name=str(token), pos=-1, direction=direction, token=token))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    cap = AttributionConfig().max_edges_per_row if capped else None
    graph = attribute(
        model, tokens, targets, AttributionConfig(max_edges_per_row=cap, progress=False)
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    save_file(
        {
            "rows": graph.edge_rows.contiguous(),
            "cols": graph.edge_cols.contiguous(),
            "weights": graph.edge_weights.float().contiguous(),
            "features": graph.index.features.contiguous(),
        },
        out,
    )
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_mb": peak,
                "rss_before_mb": before,
                "active_features": graph.index.n_features,
                "edges": int(graph.edge_weights.numel()),
                "n_nodes": graph.index.n_nodes,
            }
        )
    )


def agreement(ours_file: Path, ct_file: Path, n_layers: int, n_pos: int) -> dict[str, Any]:
    """Edge agreement after mapping circuit-tracer's node order onto this engine's: max |diff|
    over feature, error and target edges (and over token edges apart) / max |edge|."""
    from safetensors.torch import load_file

    ours, ct = load_file(str(ours_file)), load_file(str(ct_file))
    features = ours["features"]
    n_feat = len(features)
    # this layout: tokens, errors (layer, pos), features, targets
    n_ours = n_pos + n_layers * n_pos + n_feat + len(ct["logit_tokens"])
    ct_features = ct["active_features"][ct["selected_features"]]
    same_features = bool(torch.equal(ct_features.to(features.dtype), features))
    key = (features[:, 0] * n_pos + features[:, 1]) * (int(features[:, 2].max()) + 1)
    key = key + features[:, 2]
    ct_key = (ct_features[:, 0] * n_pos + ct_features[:, 1]) * (int(features[:, 2].max()) + 1)
    ct_key = ct_key + ct_features[:, 2]
    position = torch.searchsorted(key, ct_key).clamp(max=n_feat - 1)
    found = key[position] == ct_key
    # circuit-tracer's order: features, errors, tokens, logits
    n_ct = len(ct_features) + (n_layers + 1) * n_pos + len(ct["logit_tokens"])
    ours_of_ct = torch.full((n_ct,), -1, dtype=torch.long)
    feature_start = n_pos + n_layers * n_pos
    ours_of_ct[: len(ct_features)] = torch.where(found, feature_start + position, -1)
    off = len(ct_features)
    ours_of_ct[off : off + n_layers * n_pos] = n_pos + torch.arange(n_layers * n_pos)
    off += n_layers * n_pos
    ours_of_ct[off : off + n_pos] = torch.arange(n_pos)
    off += n_pos
    ours_of_ct[off:] = feature_start + n_feat + torch.arange(len(ct["logit_tokens"]))
    r, c = ours_of_ct[ct["rows"].long()], ours_of_ct[ct["cols"].long()]
    mapped = (r >= 0) & (c >= 0)
    keys = torch.cat([ours["rows"] * n_ours + ours["cols"], r[mapped] * n_ours + c[mapped]])
    values = torch.cat([ours["weights"].double(), -ct["weights"][mapped].double()])
    unique, inverse = keys.unique(return_inverse=True)
    diff = torch.zeros(len(unique), dtype=torch.float64).index_add_(0, inverse, values)
    col = unique % n_ours
    is_token = col < n_pos
    # circuit-tracer zeroes the error vectors at position 0 (its BOS position)
    is_first_error = (col >= n_pos) & (col < feature_start) & ((col - n_pos) % n_pos == 0)
    rest = ~is_token & ~is_first_error
    scale = float(ours["weights"].abs().max())

    def worst(mask: torch.Tensor) -> float:
        return float(diff[mask].abs().max()) / scale if bool(mask.any()) else 0.0

    return {
        "same_active_features": same_features,
        "features_ours": n_feat,
        "features_ct": len(ct_features),
        "max_edge": scale,
        "max_rel_diff": worst(rest),
        "max_rel_diff_token_edges": worst(is_token),
        "max_rel_diff_first_error_edges": worst(is_first_error),
        "ct_edges_unmapped": int((~mapped).sum()),
    }


def run_child(cmd: list[str]) -> dict[str, Any]:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, python: Path | None, spec: str, n: int, work: Path) -> list:
    """Both engines on one prompt at each thread count."""
    from benchmarks.attribution_speed import prompt_tokens
    from circuits.models import load_model

    bridge = load_model(spec)
    tokens = prompt_tokens(spec, bridge, n).tolist()
    stem = work / f"{spec.replace(':', '-')}-{n}"
    tokens_file = stem.with_suffix(".json")
    tokens_file.write_text(json.dumps(tokens))
    stem.with_suffix(".targets.json").unlink(missing_ok=True)
    model_dir, tc_dir = (None, None) if python is None else export(spec, work, args.random_k)
    me = [sys.executable, "-m", "benchmarks.vs_circuit_tracer"]
    runs = []
    for threads in args.threads:
        row: dict[str, Any] = {"model": spec, "n_pos": n, "threads": threads}
        row["load_before"] = os.getloadavg()
        if python is not None and not (args.ct_max_length and n > args.ct_max_length):
            ct_out = stem.with_suffix(f".ct{threads}.safetensors")
            row["ct"] = run_child(
                [str(python), __file__, "--ct-child", str(model_dir), str(tc_dir),
                 str(tokens_file), str(threads), str(ct_out)]
            )  # fmt: skip
            from safetensors.torch import load_file

            chosen = load_file(str(ct_out))["logit_tokens"].tolist()
            stem.with_suffix(".targets.json").write_text(json.dumps(chosen))
        ours_out = stem.with_suffix(f".ours{threads}.safetensors")
        row["ours"] = run_child(
            [*me, "--ours-child", spec, str(tokens_file), str(threads), str(ours_out),
             str(args.random_k or 0), "capped" if args.capped else "full"]
        )  # fmt: skip
        row["load_after"] = os.getloadavg()
        if "ct" in row:
            row["agreement"] = agreement(ours_out, ct_out, bridge.cfg.n_layers, n)
            row["speedup"] = row["ct"]["wall_s"] / row["ours"]["wall_s"]
            ct_out.unlink()
        ours_out.unlink()
        print(json.dumps(row), flush=True)
        runs.append(row)
    return runs


def render(report: dict[str, Any]) -> str:
    lines = [
        f"# This engine vs circuit-tracer {CT_VERSION} ({report['commit']}, "
        f"{report['machine']['cpu']}, {report['machine']['cores']} cores)",
        "",
        "| model | tokens | threads | ours s | circuit-tracer s | speed-up | ours peak RSS MB "
        "| circuit-tracer peak RSS MB | active features | edges (ours) | max \\|diff\\| / max "
        "\\|edge\\| (token edges) | same features | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        ours, ct, agree = r["ours"], r.get("ct"), r.get("agreement")
        lines.append(
            f"| {r['model']} | {r['n_pos']} | {r['threads']} | {ours['wall_s']:.2f} | "
            + (f"{ct['wall_s']:.2f} | {r['speedup']:.1f}x | " if ct else "- | - | ")
            + f"{ours['peak_rss_mb']:.0f} | "
            + (f"{ct['peak_rss_mb']:.0f} | " if ct else "- | ")
            + f"{ours['active_features']:,} | {ours['edges']:,} | "
            + (
                f"{agree['max_rel_diff']:.1e} ({agree['max_rel_diff_token_edges']:.1e}) | "
                f"{'yes' if agree['same_active_features'] else 'no'} | "
                if agree
                else "- | - | "
            )
            + f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["zoo:tiny", "zoo:small"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument(
        "--ct-max-length", type=int, default=None, help="run circuit-tracer only up to this length"
    )
    parser.add_argument("--ours-only", action="store_true", help="skip circuit-tracer")
    parser.add_argument(
        "--random-k",
        type=int,
        default=None,
        help="random TopK transcoders (k, 16x width) for models without a trained set",
    )
    parser.add_argument("--capped", action="store_true", help="this engine's default edge cap")
    parser.add_argument("--rebuild-venv", action="store_true")
    parser.add_argument("--ct-child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--ours-child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ct_child:
        model_dir, tc_dir, tokens_file, threads, out = args.ct_child
        ct_child(model_dir, tc_dir, tokens_file, int(threads), out)
        return
    if args.ours_child:
        spec, tokens_file, threads, out, k, capped = args.ours_child
        ours_child(spec, tokens_file, int(threads), out, int(k) or None, capped == "capped")
        return
    import tempfile

    from benchmarks.environment import commit, machine, write_results

    python = None if args.ours_only else venv_python(args.rebuild_venv)
    report: dict[str, Any] = {
        "commit": commit(),
        "machine": machine(),
        "circuit_tracer": None if python is None else CT_VERSION,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="vs-circuit-tracer-") as tmp:
        for spec in args.models:
            for n in args.lengths:
                report["runs"] += measure(args, python, spec, n, Path(tmp))
    stem = write_results("vs_circuit_tracer", report, render(report))
    print(render(report))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
