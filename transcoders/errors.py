"""Errors of the transcoder package, in the project's hierarchy (one line, the fix included)."""

from circuits.errors import CircuitsError


class TranscoderError(CircuitsError):
    """A transcoder set that is missing, malformed, or does not fit the model it is used with."""
