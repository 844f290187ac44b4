"""Error types of the storage layer.

Every error derives from :class:`StorageError` so callers can catch the whole layer at
once, and also from the closest standard exception so generic handlers (``ValueError``,
``LookupError``, ``TimeoutError``) keep working.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by ``offchain.storage``."""


class InvalidCID(StorageError, ValueError):
    """A CID string or binary CID is malformed or uses an unsupported format."""


class InvalidBlock(StorageError, ValueError):
    """A block matches its CID but its content is not a well-formed, supported DAG node."""


class ContentNotFound(StorageError, LookupError):
    """A block or file is not available from the store that was asked."""


class ContentTooLarge(StorageError, ValueError):
    """An object exceeds the size limit the caller was willing to accept."""


class IntegrityError(StorageError, ValueError):
    """Bytes that were received or read do not hash to the CID they were requested by."""


class FetchTimeout(StorageError, TimeoutError):
    """Content did not arrive before the caller's deadline."""


class StorageUnavailable(StorageError, ConnectionError):
    """The remote storage endpoint cannot be reached or answered with a protocol error."""
