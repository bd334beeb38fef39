"""Library error types. Every error a user can trigger by bad input is one of these."""


class LyraSimError(Exception):
    """Base class of every lyra-sim error."""


class SceneFormatError(LyraSimError, ValueError):
    """A splat file is malformed or unsupported. The message names the file and the problem."""


class BundleError(LyraSimError, ValueError):
    """A SimBundle is missing, malformed, or cannot be built from the given scene."""


class MissingDependencyError(LyraSimError, ImportError):
    """An optional package is needed for the requested feature."""


class MissingWeightsError(LyraSimError, FileNotFoundError):
    """Model weights were not found locally; the message says what to put where."""
