"""Writers of transcoder sets in other tools' formats, by format name (only circuit-tracer's
per-layer directories for now: the format the common graph tools load)."""

from collections.abc import Callable
from pathlib import Path

from transcoders.errors import TranscoderError
from transcoders.transcoder_set import TranscoderSet

Writer = Callable[[TranscoderSet, Path], Path]


def exporters() -> dict[str, Writer]:
    """Format name -> writer (imported on use: writers pull in yaml and safetensors)."""
    from transcoders.formats.circuit_tracer import export_circuit_tracer

    return {"circuit-tracer": export_circuit_tracer}


def export(tset: TranscoderSet, fmt: str, out: Path) -> Path:
    """Write `tset` in format `fmt` to the new directory `out`."""
    writers = exporters()
    if fmt not in writers:
        raise TranscoderError(f"cannot write format {fmt!r}; writable: {', '.join(writers)}")
    return writers[fmt](tset, out)
