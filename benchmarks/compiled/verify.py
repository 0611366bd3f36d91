"""Check that the exported GPT-2 directories reproduce the tracr models they were compiled to.

Runs in the main venv (torch, transformer-lens; no JAX): boots each `models/<name>/` through
`circuits.models.load_model`, as every other model in the project is booted, and compares its
logits at the last position of every input up to max_seq_len (the model is causal: that is every
output it can give) with tracr's, stored by build.py in reference_outputs.json.

    OMP_NUM_THREADS=1 python -m benchmarks.compiled.verify [NAME ...] [--dtype float32]
"""

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import torch

MODELS = Path(__file__).resolve().parent / "models"
TOLERANCE = 1e-4
"""Largest accepted |exported logit - tracr logit| (the reference is rounded to 1e-6)."""

log = logging.getLogger("benchmarks.compiled.verify")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Verification:
    """How closely one exported model matches tracr."""

    program: str
    """Directory name under models/."""
    n_inputs: int
    """Input sequences checked (every one up to max_seq_len)."""
    max_abs_error: float
    """Largest |exported logit - tracr logit| over all inputs and non-BOS positions."""
    decoded_mismatches: int
    """Positions whose argmax differs from tracr's decoded output, counting only positions
    where tracr's top logit beats the runner-up by > 0.5 (ties are decided arbitrarily)."""
    rasp_mismatches: int
    """Positions where tracr itself disagrees with the RASP program (compiler error, not ours)."""

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= TOLERANCE and self.decoded_mismatches == 0


def model_dirs() -> list[Path]:
    """Every exported model directory."""
    return sorted(p for p in MODELS.iterdir() if (p / "config.json").exists())


def exported_logits(bridge, tokenizer, inputs: list[str], outputs: list[str]) -> list[torch.Tensor]:
    """The bridge's logits of the output tokens at each input's last position, one
    [1, n_out] per input; inputs of one length run as one batch."""
    columns = tokenizer.convert_tokens_to_ids(outputs)
    by_len: dict[int, list[int]] = {}
    for i, text in enumerate(inputs):
        by_len.setdefault(len(text.split()), []).append(i)
    out: list[torch.Tensor] = [torch.empty(0)] * len(inputs)
    for idx in by_len.values():
        ids = [tokenizer(f"BOS {inputs[i]}")["input_ids"] for i in idx]
        with torch.no_grad():
            logits = bridge(torch.tensor(ids), return_type="logits")
        for row, i in enumerate(idx):
            out[i] = logits[row, -1:, columns]
    return out


def verify_model(model_dir: Path, dtype: torch.dtype = torch.float64) -> Verification:
    """Compare one exported model with tracr's reference outputs."""
    from circuits.models import load_model, load_tokenizer

    ref = json.loads((model_dir / "reference_outputs.json").read_text())
    bridge = load_model(str(model_dir), dtype=dtype)
    tokenizer = load_tokenizer(model_dir)
    got = exported_logits(bridge, tokenizer, ref["inputs"], ref["output_tokens"])
    err, decoded_bad, rasp_bad = 0.0, 0, 0
    for i, logits in enumerate(got):
        want = torch.tensor([ref["logits"][i]], dtype=torch.float64)
        err = max(err, (logits.double() - want).abs().max().item())
        decoded_bad += _decoded_mismatches(logits.double(), want)
        rasp_bad += _rasp_mismatches(ref, i, want)
    return Verification(
        program=model_dir.name,
        n_inputs=len(ref["inputs"]),
        max_abs_error=err,
        decoded_mismatches=decoded_bad,
        rasp_mismatches=rasp_bad,
    )


def _decoded_mismatches(got: torch.Tensor, want: torch.Tensor) -> int:
    """Argmax disagreements at positions where tracr's argmax is clear (numerical: none)."""
    if want.shape[-1] == 1:
        return 0
    top2 = want.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.5
    return int(((got.argmax(-1) != want.argmax(-1)) & clear).sum())


def _rasp_mismatches(ref: dict, i: int, want: torch.Tensor) -> int:
    """Positions where tracr's output differs from the RASP program's value."""
    expected = [ref["rasp"][i]]
    if ref["output_kind"] == "numerical":
        return sum(
            abs(w - (e if e is not None else 0.0)) > 1e-3
            for w, e in zip(want[:, 0].tolist(), expected, strict=True)
        )
    decoded = [ref["decoded"][i]]
    return sum(d != e for d, e in zip(decoded, expected, strict=True) if e is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="programs to check (default: all)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dtype = getattr(torch, args.dtype)
    failed = False
    for model_dir in model_dirs():
        if args.names and model_dir.name not in args.names:
            continue
        result = verify_model(model_dir, dtype)
        failed |= not result.ok
        log.info("%s %s", "OK  " if result.ok else "FAIL", result)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
