"""User-facing error types.

Entry scripts catch :class:`PaddleTagError` and print its message without a traceback: these
are mistakes in a config, a data file or a path that the user can fix, not bugs.
"""


class PaddleTagError(Exception):
    """Base class of every error caused by user input (config, data, paths)."""


class DamagedFileError(PaddleTagError, ValueError):
    """A file paddle_tag wrote earlier cannot be read back (truncated, not JSON, not UTF-8); the message names it.
    Also a ``ValueError``, so callers that treat unreadable JSON as "absent" keep doing so."""


class ConfigError(PaddleTagError):
    """A config file or ``-o`` override is invalid (unknown key, wrong type, bad value)."""


class DataError(PaddleTagError):
    """A data file is missing or malformed; the message names the file and line."""


class ModelLoadError(PaddleTagError):
    """A model or checkpoint cannot be loaded (missing directory, offline, label mismatch)."""


class ExportError(PaddleTagError):
    """A checkpoint cannot be exported (conversion failed, an exported file is missing or was changed)."""


class ParityError(ExportError):
    """The exported FP32 model does not reproduce the Paddle model; the message carries the figures."""


class ManifestError(ExportError):
    """An export directory does not match its ``manifest.json`` (missing / changed file, bad key, labels)."""


class StoreError(PaddleTagError):
    """The tag database cannot be opened or changed (no database, newer schema, unknown tag, failed write)."""
