"""Content-addressed storage: Kubo-compatible CIDs, an on-disk block store, a Kubo-style
RPC server and the ``ContentStore`` facade the workers use.

Everything fetched is re-hashed against the CID it was asked for, so a store (local disk
or remote daemon) is trusted for availability only, never for integrity.
"""

from __future__ import annotations

from .blockstore import DEFAULT_MAX_CAT_SIZE, MAX_BLOCK_SIZE, Blockstore
from .dagpb import PBLink, PBNode, UnixFSData, UnixFSType
from .errors import (
    ContentNotFound,
    ContentTooLarge,
    FetchTimeout,
    IntegrityError,
    InvalidBlock,
    InvalidCID,
    StorageError,
    StorageUnavailable,
)
from .importer import (
    CHUNK_SIZE,
    CIDV1_RAW_LEAVES,
    KUBO_DEFAULT,
    MAX_LINKS,
    ImportProfile,
    ImportResult,
    compute_cid,
    import_bytes,
    import_stream,
)
from .multiformats import CID, DAG_PB, RAW, SHA2_256
from .server import KUBO_COMPAT_VERSION, StorageServer, create_server, run_server, serve
from .store import (
    DEFAULT_TIMEOUT,
    MAX_ARTIFACT_BYTES,
    ContentStore,
    KuboStore,
    LocalStore,
    api_address,
    default_store_dir,
    open_store,
)

__all__ = [
    "CHUNK_SIZE",
    "CID",
    "CIDV1_RAW_LEAVES",
    "DAG_PB",
    "DEFAULT_MAX_CAT_SIZE",
    "DEFAULT_TIMEOUT",
    "KUBO_COMPAT_VERSION",
    "KUBO_DEFAULT",
    "MAX_ARTIFACT_BYTES",
    "MAX_BLOCK_SIZE",
    "MAX_LINKS",
    "RAW",
    "SHA2_256",
    "Blockstore",
    "ContentNotFound",
    "ContentStore",
    "ContentTooLarge",
    "FetchTimeout",
    "ImportProfile",
    "ImportResult",
    "IntegrityError",
    "InvalidBlock",
    "InvalidCID",
    "KuboStore",
    "LocalStore",
    "PBLink",
    "PBNode",
    "StorageError",
    "StorageServer",
    "StorageUnavailable",
    "UnixFSData",
    "UnixFSType",
    "api_address",
    "compute_cid",
    "create_server",
    "default_store_dir",
    "import_bytes",
    "import_stream",
    "open_store",
    "run_server",
    "serve",
]
