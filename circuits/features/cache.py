"""The feature atlas on disk: one directory per transcoder set, corpus and scan settings.

```
<cache>/features/<model>-<key>/
    atlas.json         kind "feature_atlas", schema_version, key, model, transcoders, corpus,
                       settings, eot, n_scanned, d_transcoder (per layer), scan seconds
    scan.safetensors   windows (int32 token ids), layers.<L>.top_values / top_rows / n_active
```

The key is a hash of the transcoder set's files (config and weights), the corpus, the model id
and the scan settings: a retrained set, another corpus or other settings get a directory of
their own. Token ids, not strings, are stored; the model's tokenizer decodes them at load time
(about 0.4 MB for the shipped tiny set). Directories are written atomically; one that cannot be
read (an interrupted copy, an older schema) is rebuilt with a warning.
"""

import hashlib
import json
import logging
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from circuits.features.atlas import FeatureAtlas, build_atlas
from circuits.features.errors import FeatureError
from circuits.features.scan import FeatureScan, LayerScan, ScanSettings
from circuits.paths import atomic_dir, cache_dir

log = logging.getLogger(__name__)

KIND = "feature_atlas"
SCHEMA_VERSION = 1
ATLAS_JSON = "atlas.json"
SCAN_FILE = "scan.safetensors"
_META_KEYS = {
    "kind",
    "schema_version",
    "key",
    "model",
    "transcoders",
    "corpus",
    "settings",
    "eot",
    "n_scanned",
    "d_transcoder",
    "seconds",
}


class _Unreadable(Exception):
    """A cached atlas that cannot be used as it is; the message says why."""


SHIPPED_ATLAS = "atlas"
"""A set's own atlas, in this subdirectory of the set (used before the user cache)."""


def atlas_key(tset_dir: Path, settings: ScanSettings, *, model: str, corpus: str) -> str:
    """Hex digest naming the atlas of the set saved in `tset_dir` on `corpus` under `settings`."""
    files = sorted(
        p for p in tset_dir.iterdir() if p.name == "config.json" or p.suffix == ".safetensors"
    )
    if not files:
        raise FeatureError(f"no transcoder set files in {tset_dir}; pass the set's directory")
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    stamp = {"model": model, "corpus": corpus, "settings": asdict(settings)}
    digest.update(json.dumps(stamp, sort_keys=True).encode())
    return digest.hexdigest()


def atlas_dir(model: str, key: str) -> Path:
    """Where the atlas with `key` of `model` (a model id) is cached."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-") or "model"
    return cache_dir() / "features" / f"{slug}-{key[:16]}"


def save_scan(scan: FeatureScan, path: Path, *, meta: dict[str, Any]) -> None:
    """Write `scan` and `meta` (the identity fields of atlas.json) to `path` atomically."""
    from safetensors.torch import save_file

    tensors = {"windows": scan.windows.to(torch.int32).contiguous()}
    for layer, found in enumerate(scan.layers):
        tensors[f"layers.{layer}.top_values"] = found.top_values.float().contiguous()
        tensors[f"layers.{layer}.top_rows"] = found.top_rows.to(torch.int32).contiguous()
        tensors[f"layers.{layer}.n_active"] = found.n_active.to(torch.int64).contiguous()
    atlas = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        **meta,
        "settings": asdict(scan.settings),
        "n_scanned": scan.n_scanned,
        "d_transcoder": [found.n_active.shape[0] for found in scan.layers],
        "seconds": scan.seconds,
    }
    with atomic_dir(path, kind="feature_atlas") as tmp:
        save_file(tensors, str(tmp / SCAN_FILE))
        (tmp / ATLAS_JSON).write_text(json.dumps(atlas, indent=2) + "\n")


def load_scan(path: Path, *, key: str) -> FeatureScan:
    """The scan cached at `path` under `key`; raises _Unreadable saying what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads((path / ATLAS_JSON).read_text())
        tensors = load_file(str(path / SCAN_FILE))
    except (OSError, ValueError, SafetensorError) as err:
        raise _Unreadable(f"{err.__class__.__name__}: {err}") from err
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise _Unreadable(f"{ATLAS_JSON} is not a feature atlas")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise _Unreadable(f"schema_version {meta.get('schema_version')!r}, not {SCHEMA_VERSION}")
    if set(meta) != _META_KEYS:
        raise _Unreadable(f"{ATLAS_JSON} has keys {sorted(meta)}, expected {sorted(_META_KEYS)}")
    if meta["key"] != key:
        raise _Unreadable("it belongs to another transcoder set or settings")
    try:
        settings = ScanSettings(**meta["settings"])
        layers = tuple(
            LayerScan(
                top_values=tensors[f"layers.{layer}.top_values"],
                top_rows=tensors[f"layers.{layer}.top_rows"],
                n_active=tensors[f"layers.{layer}.n_active"],
            )
            for layer in range(len(meta["d_transcoder"]))
        )
        scan = FeatureScan(
            settings=settings, windows=tensors["windows"], layers=layers, seconds=meta["seconds"]
        )
    except (KeyError, TypeError, ValueError) as err:  # jaxtyping's shape errors are TypeErrors
        raise _Unreadable(f"{err.__class__.__name__}: {err}") from err
    expected = (settings.n_windows, settings.seq_len)
    if tuple(scan.windows.shape) != expected or [
        tuple(found.top_values.shape) for found in layers
    ] != [(d, settings.top_k) for d in meta["d_transcoder"]]:
        raise _Unreadable("its tensors do not have the shapes its settings imply")
    return scan


def load_or_build_atlas(
    spec: str,
    bridge: Any,
    tset: Any,
    tset_dir: Path,
    *,
    n_tokens: int = 65_536,
    top_k: int = 8,
    progress: bool = True,
    rebuild: bool = False,
    corpus: Any = None,
) -> FeatureAtlas:
    """The atlas of the set `tset` (saved in `tset_dir`) on the model `spec`, from the cache,
    else built on the model's held-out corpus and cached.

    `corpus` (a `transcoders.corpus.CorpusTokens`) replaces the model's corpus; without it, a
    cache miss needs the corpus (`circuits corpus build`) and raises TranscoderError if it is
    not built. `rebuild` scans again even if a cached atlas exists.
    """
    from transcoders.corpus import corpus_config_for, load_corpus_tokens, window_length
    from transcoders.transcoder_set import model_id

    settings = ScanSettings(n_tokens=n_tokens, top_k=top_k, seq_len=window_length(spec, bridge))
    model = model_id(spec)
    if corpus is None:
        from circuits.corpus.build import corpus_dir

        corpus_name = corpus_dir(corpus_config_for(spec)).name
    else:
        corpus_name = "tokens-" + hashlib.sha256(corpus.val.tobytes()).hexdigest()[:16]
        corpus_name += f"-eot{corpus.eot}"
    key = atlas_key(tset_dir, settings, model=model, corpus=corpus_name)
    path = atlas_dir(model, key)
    # a set may ship its atlas (the default model's does), so that no corpus is needed
    for candidate in (tset_dir / SHIPPED_ATLAS, path):
        if not (candidate / ATLAS_JSON).exists() or rebuild:
            continue
        try:
            scan = load_scan(candidate, key=key)
        except _Unreadable as why:
            log.warning("the feature atlas at %s is unusable (%s); rebuilding it", candidate, why)
        else:
            log.info("feature atlas of %s loaded from %s", model, candidate)
            return FeatureAtlas(scan, bridge=bridge, tset=tset, path=candidate)
    if corpus is None:
        corpus = load_corpus_tokens(spec, bridge)
    log.info("building the feature atlas of %s (%d held-out tokens)", model, n_tokens)
    atlas = build_atlas(
        bridge,
        tset,
        corpus.val,
        eot=corpus.eot,
        seq_len=settings.seq_len,
        n_tokens=n_tokens,
        top_k=top_k,
        progress=progress,
    )
    meta = {
        "key": key,
        "model": model,
        "transcoders": str(tset_dir),
        "corpus": corpus_name,
        "eot": corpus.eot,
    }
    save_scan(atlas.scan, path, meta=meta)
    log.info("feature atlas written to %s", path)
    return FeatureAtlas(atlas.scan, bridge=bridge, tset=tset, path=path)
