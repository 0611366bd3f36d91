"""A compiled tracr model as GPT-2 weights (numpy only: runs under the tracr venv, no torch).

tracr's model is a pre-norm-free transformer whose layers are (attention, MLP) pairs, the
missing half of a pair already zero-filled by tracr's assembler; so GPT-2 block i is tracr
layer i, head for head. What GPT-2 adds and tracr lacks is LayerNorm before every sublayer and
before the unembedding. We neutralise it exactly:

- one extra residual dimension, the *balance*, holds minus the sum of all the others (every
  write into the residual - embeddings, attention and MLP outputs and their biases - also
  writes minus its own sum there), so every position's mean over d_model is 0 and LayerNorm's
  centring does nothing;
- `layer_norm_epsilon` = LN_EPS (1e10) dwarfs the variance (at most a few hundred here), so the
  normaliser is the constant sqrt(LN_EPS) = 1e5 (exactly so in float32, where 1e10 + var
  rounds to 1e10; relative error var / 2e10 < 1e-8 in float64);
- every LayerNorm's weight is LN_SCALE = sqrt(LN_EPS), which undoes that normaliser, and its
  bias is 0: each sublayer reads the residual stream at tracr's own scale (what transcoders,
  trained on the MLP inputs after `ln_2`, need), and the read weights are tracr's.

GPT-2 needs d_model = n_head * d_head, so the residual (tracr's dims + balance) is zero-padded
up to that, and d_head >= tracr's key_size. Both models divide attention scores by
sqrt(head size); where d_head != key_size, W_Q (and its bias) carry sqrt(d_head / key_size).
"""

import math

import numpy as np

LN_EPS = 1e10
"""GPT-2 `layer_norm_epsilon`: makes LayerNorm's normaliser a constant."""
LN_SCALE = math.sqrt(LN_EPS)
"""The constant normaliser: every LayerNorm's weight, so that it multiplies it back."""


def gpt2_shape(model) -> dict[str, int]:
    """GPT-2 sizes for a tracr model: heads as tracr's, d_head padded so the residual fits."""
    cfg = model.model_config
    n_tracr = len(model.residual_labels)
    n_head = cfg.num_heads
    d_head = max(cfg.key_size, math.ceil((n_tracr + 1) / n_head))
    n_vocab_in = model.params["token_embed"]["embeddings"].shape[0]
    return {
        "n_layer": cfg.num_layers,
        "n_head": n_head,
        "d_head": d_head,
        "key_size": cfg.key_size,
        "d_model": n_head * d_head,
        "d_tracr": n_tracr,
        "balance": n_tracr,
        "n_inner": cfg.mlp_hidden_size,
        "n_positions": model.params["pos_embed"]["embeddings"].shape[0],
        "n_vocab_in": n_vocab_in,
    }


def to_residual(w: np.ndarray, shape: dict[str, int]) -> np.ndarray:
    """Widen a [..., d_tracr] write into GPT-2's residual, adding the balance column."""
    out = np.zeros((*w.shape[:-1], shape["d_model"]))
    out[..., : shape["d_tracr"]] = w
    out[..., shape["balance"]] = -w.sum(axis=-1)
    return out


def from_residual(w: np.ndarray, shape: dict[str, int]) -> np.ndarray:
    """Widen a [d_tracr, ...] read to GPT-2's residual (balance and padding are never read)."""
    out = np.zeros((shape["d_model"], *w.shape[1:]))
    out[: shape["d_tracr"]] = w
    return out


def split_heads(w: np.ndarray, shape: dict[str, int], axis: int) -> np.ndarray:
    """Re-pad tracr's heads (key_size each, along `axis`) to GPT-2's d_head each."""
    w = np.moveaxis(w, axis, -1)
    heads = w.reshape((*w.shape[:-1], shape["n_head"], shape["key_size"]))
    padded = np.zeros((*heads.shape[:-1], shape["d_head"]))
    padded[..., : shape["key_size"]] = heads
    padded = padded.reshape((*w.shape[:-1], shape["d_model"]))
    return np.moveaxis(padded, -1, axis)


def attention_weights(params: dict, layer: int, shape: dict[str, int]) -> dict[str, np.ndarray]:
    """c_attn and c_proj of one block (GPT-2 Conv1D: y = x @ W + b)."""
    p = lambda name: params[f"transformer/layer_{layer}/attn/{name}"]  # noqa: E731
    q_gain = math.sqrt(shape["d_head"] / shape["key_size"])
    qkv_w, qkv_b = [], []
    for name, gain in (("query", q_gain), ("key", 1.0), ("value", 1.0)):
        qkv_w.append(split_heads(from_residual(np.asarray(p(name)["w"]), shape), shape, 1) * gain)
        qkv_b.append(split_heads(np.asarray(p(name)["b"])[None], shape, 1)[0] * gain)
    proj_w = split_heads(to_residual(np.asarray(p("linear")["w"]), shape), shape, 0)
    return {
        "attn.c_attn.weight": np.concatenate(qkv_w, axis=1),
        "attn.c_attn.bias": np.concatenate(qkv_b),
        "attn.c_proj.weight": proj_w,
        "attn.c_proj.bias": to_residual(np.asarray(p("linear")["b"]), shape),
    }


def mlp_weights(params: dict, layer: int, shape: dict[str, int]) -> dict[str, np.ndarray]:
    """c_fc and c_proj of one block."""
    p = lambda name: params[f"transformer/layer_{layer}/mlp/{name}"]  # noqa: E731
    return {
        "mlp.c_fc.weight": from_residual(np.asarray(p("linear_1")["w"]), shape),
        "mlp.c_fc.bias": np.asarray(p("linear_1")["b"]),
        "mlp.c_proj.weight": to_residual(np.asarray(p("linear_2")["w"]), shape),
        "mlp.c_proj.bias": to_residual(np.asarray(p("linear_2")["b"]), shape),
    }


def unembedding(model, output_columns: list[int], shape: dict[str, int]) -> np.ndarray:
    """lm_head.weight [vocab_size, d_model]: the vocabulary is the input tokens (tracr's ids)
    followed by one output token per output value, so logit n_vocab_in + j reads tracr's residual
    dim output_columns[j] (the output space, in the output encoder's order) and input tokens'
    logits are zero. Distinct ids let task files name answers as tokens."""
    n_in = shape["n_vocab_in"]
    read = np.zeros((shape["d_tracr"], n_in + len(output_columns)))
    for j, column in enumerate(output_columns):
        read[column, n_in + j] = 1.0
    return from_residual(read, shape).T


def gpt2_state_dict(model, output_columns: list[int]) -> dict[str, np.ndarray]:
    """Every GPT-2 parameter, float32, under Hugging Face names."""
    shape = gpt2_shape(model)
    params = model.params
    lm_head = unembedding(model, output_columns, shape)
    wte = np.zeros((lm_head.shape[0], shape["d_model"]))
    wte[: shape["n_vocab_in"]] = to_residual(np.asarray(params["token_embed"]["embeddings"]), shape)
    gain, zeros = np.full(shape["d_model"], LN_SCALE), np.zeros(shape["d_model"])
    state = {
        "transformer.wte.weight": wte,
        "transformer.wpe.weight": to_residual(np.asarray(params["pos_embed"]["embeddings"]), shape),
        "transformer.ln_f.weight": gain,
        "transformer.ln_f.bias": zeros,
        "lm_head.weight": lm_head,
    }
    for layer in range(shape["n_layer"]):
        block = {"ln_1.weight": gain, "ln_1.bias": zeros, "ln_2.weight": gain, "ln_2.bias": zeros}
        block |= attention_weights(params, layer, shape) | mlp_weights(params, layer, shape)
        state |= {f"transformer.h.{layer}.{k}": v for k, v in block.items()}
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def gpt2_config(model, d_vocab: int) -> dict:
    """config.json for `GPT2LMHeadModel`: ReLU, no dropout, untied embeddings, huge epsilon."""
    shape = gpt2_shape(model)
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": d_vocab,
        "n_positions": shape["n_positions"],
        "n_embd": shape["d_model"],
        "n_layer": shape["n_layer"],
        "n_head": shape["n_head"],
        "n_inner": shape["n_inner"],
        "activation_function": "relu",
        "layer_norm_epsilon": LN_EPS,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "torch_dtype": "float32",
    }
