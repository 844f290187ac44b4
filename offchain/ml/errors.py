"""Error hierarchy of the proof-of-learning layer.

Every error raised on purpose derives from :class:`MLError` so callers (workers, CLI) can catch
the whole layer at once, and also from the closest standard error so generic handlers still work.
"""

from __future__ import annotations


class MLError(Exception):
    """Base class of every error raised by ``offchain.ml``."""


class SpecError(MLError, ValueError):
    """A model spec is malformed, uses a non-whitelisted layer, or exceeds a size cap."""


class ArtifactError(MLError, ValueError):
    """A weights/dataset/checkpoint artifact is malformed or inconsistent with its spec."""


class TaskError(MLError, ValueError):
    """A task spec is malformed or not in canonical form."""


class ProofError(MLError, ValueError):
    """A proof document is malformed or inconsistent with its task."""


class CommitmentError(MLError, ValueError):
    """A Merkle proof or tensor commitment request is malformed."""


class GraphError(MLError, ValueError):
    """A training program cannot be captured, parsed or executed as asked."""


class TrainingError(MLError, RuntimeError):
    """Training could not proceed (bad resume point, non-finite state, ...)."""


class DataError(MLError, ValueError):
    """A user's data file cannot become a training set (see ``data.py``); the message names the file."""
