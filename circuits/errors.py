"""The project's error hierarchy: one-line, user-facing failures with the fix in the message."""


class CircuitsError(Exception):
    """A failure caused by the user's input or environment, reported without a traceback."""


def one_line(err: BaseException) -> str:
    """The error's message on one line: a newline from the user's input (a key, a path) shows
    as `\\n` instead of breaking the line."""
    return str(err).strip().replace("\r", "\\r").replace("\n", "\\n")


class ModelSpecError(CircuitsError):
    """A model spec (zoo name, directory or hub name) that cannot be resolved or loaded."""


class CorpusError(CircuitsError):
    """A corpus or tokenizer that cannot be built or does not match what the tasks need."""


class CheckpointError(CircuitsError):
    """A training checkpoint that is missing, corrupted or from a different configuration."""


class AttributionError(CircuitsError):
    """A model, prompt or target that the attribution engine cannot handle as given."""


class TaskFileError(CircuitsError):
    """A task file (TOML) that is malformed or builds prompts the model cannot take."""


class CompareError(CircuitsError):
    """Directories that cannot be compared: not run directories, or runs of different tasks."""


class OutputPathError(CircuitsError):
    """An output path the tool must not write: a user's folder or file, the current directory."""


class GapError(CircuitsError):
    """A task whose clean and corrupted prompts give (nearly) the same metric."""
