"""Transcoder sets in the formats the field publishes, read into this project's `TranscoderSet`
(and, for circuit-tracer, written): one module per format behind `registry`.

`load_any(path_or_hub_name, bridge=...)` picks the format by content; docs/formats.md lists the
formats, their files and formulas.
"""

from transcoders.formats.registry import (
    FORMATS,
    Format,
    detect,
    formats,
    load_any,
    register,
    resolve,
)

__all__ = ["FORMATS", "Format", "detect", "formats", "load_any", "register", "resolve"]
