"""Errors of the feature descriptions, in the project's hierarchy (one line, the fix included)."""

from circuits.errors import CircuitsError


class FeatureError(CircuitsError):
    """A feature that does not exist in the transcoder set, or an atlas that cannot be built."""
