"""Compile causal RASP programs with tracr and export them as GPT-2 Hugging Face directories.

Runs under the separate tracr venv (JAX, no torch; see requirements-tracr.txt), never the main
one, and imports nothing from `circuits`:

    python3 -m venv /tmp/tracr-venv
    /tmp/tracr-venv/bin/pip install -r benchmarks/compiled/requirements-tracr.txt
    OMP_NUM_THREADS=1 /tmp/tracr-venv/bin/python benchmarks/compiled/build.py [NAME ...]

Each `models/<name>/` gets config.json, model.safetensors, tokenizer files, ground_truth.json
(the circuit, derived from tracr's weights) and reference_outputs.json (tracr's own outputs on
every input up to max_seq_len, computed in float64), which `verify.py` checks the exported model
against in the main venv.
"""

import argparse
import inspect
import itertools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from export import LN_EPS, gpt2_config, gpt2_shape, gpt2_state_dict
from programs import PROGRAMS, CompiledProgram
from safetensors.numpy import save_file
from tracr.compiler import compiling
from tracr.rasp import rasp
from truth import circuit, component_io, rasp_variables

HERE = Path(__file__).resolve().parent
BOS, PAD = "BOS", "compiler_pad"
DIGITS = 6
"""Decimals kept in reference_outputs.json: rounding adds at most 5e-7 to the measured error,
far under the check's 1e-4, and keeps the file a few MB."""


def compile_program(spec: CompiledProgram):
    """The program's SOp and tracr's causal model of it.

    tracr-pypi labels every SOp `name_<id>` from a process-wide counter; restarting it per
    program keeps the labels in the exported files the same however many programs one run builds.
    """
    rasp.RASPExpr._ids = itertools.count(1)
    program = spec.make()
    model = compiling.compile_rasp_to_model(
        program,
        vocab=set(spec.vocab),
        max_seq_len=spec.max_seq_len,
        causal=True,
        compiler_bos=BOS,
        compiler_pad=PAD,
    )
    return program, model


def output_space(program, model) -> tuple[list, list[int]]:
    """The output's values (in the output encoder's order) and their tracr residual columns.

    A numerical output is one direction, the program's label, whose value is the output.
    """
    labels = model.residual_labels
    if rasp.is_numerical(program):
        return [None], [labels.index(program.label)]
    values = sorted(model.output_encoder.encoding_map, key=model.output_encoder.encoding_map.get)
    return values, [labels.index(f"{program.label}:{v}") for v in values]


def output_tokens(program, values: list) -> list[str]:
    """One vocabulary word per output value: "=a", "=3", "=True"; a numerical output's is
    "=<its label>" (its logit is the value)."""
    if rasp.is_numerical(program):
        return [f"={program.label}"]
    return [f"={v}" for v in values]


def write_tokenizer(
    out: Path, encoding_map: dict[str, int], outputs: list[str], n_positions: int
) -> None:
    """Word-level tokenizer with tracr's token ids, so "BOS x y" encodes as tracr encodes it,
    then the output tokens (ids after the inputs', matching the lm_head rows that read them).

    No post-processor: nothing is prepended; the caller writes BOS itself.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = dict(encoding_map)
    vocab |= {word: len(encoding_map) + j for j, word in enumerate(outputs)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "pad_token": PAD,
        "unk_token": PAD,
        "model_max_length": n_positions,
        "add_bos_token": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": BOS, "pad_token": PAD, "unk_token": PAD}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def all_inputs(spec: CompiledProgram) -> list[tuple[str, ...]]:
    """Every input sequence of length 1..max_seq_len (BOS not included)."""
    return [
        seq
        for n in range(1, spec.max_seq_len + 1)
        for seq in itertools.product(spec.vocab, repeat=n)
    ]


def reference_outputs(spec, program, model, columns: list[int]) -> dict:
    """tracr's outputs on every input at its last position (the model is causal, so the last
    positions of all inputs up to max_seq_len are every output it can give): the output-space
    logits, the decoded output (argmax for categorical) and the RASP program's own value."""
    forward = jax.jit(model.forward)
    enc = model.input_encoder.encoding_map
    inputs = all_inputs(spec)
    logits, decoded = [], []
    for n in range(1, spec.max_seq_len + 1):
        batch = [seq for seq in inputs if len(seq) == n]
        ids = jnp.array([[enc[BOS]] + [enc[t] for t in seq] for seq in batch])
        out = forward(model.params, ids)
        res = np.asarray(out.transformer_output.output)[:, -1, :]  # [batch, d_tracr]
        logits.extend(np.round(res[:, columns], DIGITS).tolist())
        decoded.extend(np.asarray(out.unembedded_output)[:, -1].tolist())
    if not rasp.is_numerical(program):
        values, _ = output_space(program, model)
        decoded = [values[i] for i in decoded]
    reference = {
        "inputs": [" ".join(seq) for seq in inputs],
        "logits": logits,
        "rasp": [_jsonable(program(list(seq)))[-1] for seq in inputs],
    }
    if not rasp.is_numerical(program):  # numerical: decoded == logits[..., 0]
        reference["decoded"] = decoded
    return reference


def _jsonable(row: list) -> list:
    return [float(v) if isinstance(v, (float, np.floating)) else v for v in row]


def ground_truth(spec, program, model, values: list) -> dict:
    """The circuit and its provenance, all read from tracr's graph and weights."""
    io = component_io(model)
    numerical = rasp.is_numerical(program)
    return {
        "program": spec.name,
        "description": spec.description,
        "source": inspect.getsource(spec.make),
        "vocab": list(spec.vocab),
        "bos": BOS,
        "max_seq_len": spec.max_seq_len,
        "output_variable": program.label,
        "output_kind": "numerical" if numerical else "categorical",
        "output_read": (
            "the logit of output_tokens[0] equals the output value at each position"
            if numerical
            else "the logit of output_tokens[j] scores output_values[j]; the output is the "
            "argmax over them"
        ),
        "output_values": values,
        "output_tokens": output_tokens(program, values),
        "position_0": "BOS; the program's outputs are at positions 1..n",
        "notes": (
            "Variables are tracr's residual directions (tokens and indices one-hot, 'one' a "
            "constant 1, all written by EMBED). Reads of 'tokens' by a key are of tokens:BOS: "
            "tracr makes every head also attend to BOS, which wins when no key matches. "
            "'components' lists per head the variables its query, key and value read; "
            "'all_edges' joins every writer to every later reader; 'nodes' and 'edges' keep "
            "those on a path from EMBED to LOGITS."
        ),
        "variables": rasp_variables(program),
        "components": io,
        **circuit(io, program.label),
    }


def build(spec: CompiledProgram, root: Path) -> None:
    """Compile, export and check one program into root/<name>/."""
    program, model = compile_program(spec)
    values, columns = output_space(program, model)
    out = root / spec.name
    out.mkdir(parents=True, exist_ok=True)
    state = gpt2_state_dict(model, columns)
    config = gpt2_config(model, d_vocab=state["lm_head.weight"].shape[0])
    config["tracr"] = {"residual_labels": model.residual_labels, "ln_eps": LN_EPS}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)  # save_file creates it owner-only
    truth = ground_truth(spec, program, model, values)
    write_tokenizer(
        out,
        model.input_encoder.encoding_map,
        truth["output_tokens"],
        gpt2_shape(model)["n_positions"],
    )
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2, default=str) + "\n")
    domain = {"vocab": list(spec.vocab), "bos": BOS, "max_seq_len": spec.max_seq_len}
    (out / "input_domain.json").write_text(json.dumps(domain) + "\n")
    reference = reference_outputs(spec, program, model, columns)
    reference |= {
        "program": spec.name,
        "output_values": values,
        "output_tokens": truth["output_tokens"],
        "output_kind": truth["output_kind"],
    }
    compact = json.dumps(reference, separators=(",", ":"), default=str)
    (out / "reference_outputs.json").write_text(compact + "\n")
    print(f"{spec.name}: {gpt2_shape(model)} circuit {truth['edges']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="programs to build (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "models")
    args = parser.parse_args()
    # Before any array exists: tracr's weights and the reference outputs in float64, as
    # verify.py runs the exported model.
    jax.config.update("jax_enable_x64", True)
    for spec in PROGRAMS:
        if not args.names or spec.name in args.names:
            build(spec, args.out)


if __name__ == "__main__":
    main()
