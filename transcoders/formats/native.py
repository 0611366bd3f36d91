"""This project's own format (`config.json` of kind `transcoder_set` + `weights.safetensors`),
read exactly as `transcoders.transcoder_set.load_transcoder_set` always has."""

import json
from pathlib import Path
from typing import Any

from transcoders.formats.registry import Format, register
from transcoders.transcoder_set import CONFIG, KIND, TranscoderSet, load_transcoder_set


def holds_native(path: Path) -> bool:
    """A directory whose config.json says kind `transcoder_set` (or fails to parse: then the
    native loader says what is wrong with it)."""
    file = path / CONFIG
    if not file.is_file():
        return False
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return not (path / "sae.safetensors").exists() and not (path / "cfg.json").exists()
    return isinstance(config, dict) and config.get("kind") == KIND


def load_native(path: Path, bridge: Any) -> TranscoderSet:
    return load_transcoder_set(path, bridge=bridge)


NATIVE = register(
    Format(
        name="transcoder-set",
        summary="this project's own sets (`transcoders train`): config.json + weights.safetensors",
        detect=holds_native,
        load=load_native,
    )
)
