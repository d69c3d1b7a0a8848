"""Domain exceptions with one-line messages that say what to do next.

The CLI catches `RagError` and prints `str(error)` on one line, never a traceback.
Everything here is a user-facing condition; programming errors stay ordinary
exceptions.
"""


class RagError(Exception):
    """Base class: the message is one line and tells the user the fix."""

    exit_code = 1


class InputError(RagError):
    """A bad path, file or question given by the user."""

    exit_code = 2


class IndexMissingError(RagError):
    """No index exists where one was expected."""


class StaleIndexError(RagError):
    """The index was built with other settings or an older format."""


class DamagedIndexError(RagError):
    """Files of the published index are missing, truncated or unreadable."""


class IndexLockedError(RagError):
    """Another process is writing the index."""


class ModelError(RagError):
    """A missing, truncated or corrupt model file, or a failed pull."""


class PromptError(RagError):
    """A prompt file with missing or unknown placeholders."""


class EvalError(RagError):
    """A malformed question set or a failed evaluation floor."""


class ServerError(RagError):
    """A Chroma or model server that cannot be reached, times out or answers wrongly."""
