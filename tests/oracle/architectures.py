"""Tiny random models of every architecture the engine supports, in float64, with random
transcoders of every activation kind; cached per process."""

import functools
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoConfig,
    GPTNeoForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from circuits.models import load_model
from transcoders.config import TranscoderConfig
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet

D_VOCAB, D_MODEL, N_CTX, N_LAYERS = 48, 16, 24, 2
KINDS = {
    "relu": {"l1_coefficient": 1e-3},
    "topk": {"k": 6},
    "batchtopk": {"k": 6},
    "jumprelu": {"l0_coefficient": 1e-3},
}


def _configs():
    common = {"vocab_size": D_VOCAB, "max_position_embeddings": N_CTX}
    gqa = {"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 32}
    return {
        "gpt2": (
            GPT2Config(
                vocab_size=D_VOCAB,
                n_positions=N_CTX,
                n_embd=D_MODEL,
                n_layer=N_LAYERS,
                n_head=2,
                bos_token_id=0,
                eos_token_id=0,
            ),
            GPT2LMHeadModel,
        ),
        "pythia": (  # parallel attention and MLP, partial rotary
            GPTNeoXConfig(
                **common,
                hidden_size=D_MODEL,
                num_hidden_layers=N_LAYERS,
                num_attention_heads=2,
                intermediate_size=32,
                use_parallel_residual=True,
                rotary_pct=0.5,
            ),
            GPTNeoXForCausalLM,
        ),
        "llama": (  # RMSNorm, rotary, gated MLP, grouped-query attention
            LlamaConfig(**common, **gqa, hidden_size=D_MODEL, num_hidden_layers=N_LAYERS),
            LlamaForCausalLM,
        ),
        "gemma2": (  # pre- and post-norms, attention and final logit softcaps
            Gemma2Config(
                **common,
                **gqa,
                hidden_size=D_MODEL,
                num_hidden_layers=N_LAYERS,
                head_dim=8,
                final_logit_softcapping=30.0,
                attn_logit_softcapping=50.0,
                sliding_window=8,
            ),
            Gemma2ForCausalLM,
        ),
        "gptneo": (  # attention handed to HF: must be refused
            GPTNeoConfig(
                **common,
                hidden_size=D_MODEL,
                num_layers=N_LAYERS,
                num_heads=2,
                attention_types=[[["global"], N_LAYERS]],
            ),
            GPTNeoForCausalLM,
        ),
    }


ARCHITECTURES = ("gpt2", "pythia", "llama", "gemma2")


def _tokenizer() -> PreTrainedTokenizerFast:
    vocab = {f"t{i}": i for i in range(D_VOCAB)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="t0", eos_token="t0", unk_token="t0"
    )


@functools.cache
def random_bridge(architecture: str, root: Path):
    """A random float64 model of `architecture`, saved under `root` and booted by the bridge."""
    config, cls = _configs()[architecture]
    out = root / architecture
    with torch.random.fork_rng():
        torch.manual_seed(0)
        cls(config).save_pretrained(out)
    _tokenizer().save_pretrained(out)
    return load_model(str(out), dtype=torch.float64)


def random_transcoders(
    kind: str, *, skip: bool, seed: int = 0, d_transcoder: int = 64
) -> TranscoderSet:
    """Random float64 transcoders for the models above, with biases and thresholds set so that
    a fair share of features is active."""
    layers = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(N_LAYERS):
            config = TranscoderConfig(
                d_model=D_MODEL, d_transcoder=d_transcoder, kind=kind, skip=skip, **KINDS[kind]
            )
            transcoder = Transcoder(config).double()
            with torch.no_grad():
                transcoder.W_enc.mul_(3)
                transcoder.b_enc.normal_(0.0, 0.2)
                transcoder.b_dec.normal_(0.0, 0.1)
                if transcoder.W_skip is not None:
                    transcoder.W_skip.normal_(0.0, 0.2)
                threshold = transcoder.threshold
                if threshold is not None:
                    threshold.fill_(0.1)
            layers.append(transcoder)
    return TranscoderSet(layers, model="random")


def assert_edges_equal_removals(model, trace, graph, targets, columns, *, rtol: float) -> None:
    """The oracle: each source column of `graph` in `columns` equals, on every row, the effect
    of removing that source from the frozen model with every other node held at its recorded
    value (to `rtol` of the largest clean value)."""
    from circuits.attribution.attribute import removal_scales, row_values

    index = graph.index
    adjacency = graph.dense_adjacency()[index.feature_start :]
    with torch.no_grad():
        replay = model.replay(trace)
        ablated = model.replay(trace, removal_scales(trace, index, columns))  # a copy per source
    clean = row_values(model, trace, targets, replay.mlp_in, replay.logits)[0]
    effects = clean - row_values(model, trace, targets, ablated.mlp_in, ablated.logits)
    scale = float(clean.abs().max())
    for column, effect in zip(columns, effects, strict=True):
        torch.testing.assert_close(
            adjacency[:, column],
            effect,
            rtol=rtol,
            atol=rtol * scale,
            msg=lambda m, c=column: f"column {c} ({index.node(c)}): {m}",
        )
