"""The ContentStore facade: LocalStore, KuboStore against a daemon, and open_store."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from storage_testing import FakeDaemon

from offchain.storage import (
    CHUNK_SIZE,
    CID,
    RAW,
    ContentNotFound,
    ContentStore,
    ContentTooLarge,
    FetchTimeout,
    IntegrityError,
    InvalidCID,
    KuboStore,
    LocalStore,
    StorageServer,
    StorageUnavailable,
    api_address,
    compute_cid,
    default_store_dir,
    open_store,
)

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter:FutureWarning")

DATA = random.Random(13).randbytes(2 * CHUNK_SIZE + 5)
FakeDaemonFactory = Callable[..., FakeDaemon]


@pytest.fixture(params=["local", "kubo"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ContentStore:
    if request.param == "local":
        return LocalStore(tmp_path / "local")
    server: StorageServer = request.getfixturevalue("storage_server")
    return KuboStore(server.url)


def test_roundtrip_through_either_store(any_store: ContentStore, tmp_path: Path) -> None:
    with any_store:
        cid = any_store.add_bytes(DATA)
        assert cid == compute_cid(DATA)
        assert any_store.cat(cid) == DATA
        any_store.pin(cid)
        path = tmp_path / "weights.bin"
        path.write_bytes(DATA[:1000])
        assert any_store.add_file(path) == compute_cid(DATA[:1000])


def test_either_store_enforces_limits_and_reports_missing(any_store: ContentStore) -> None:
    with any_store:
        cid = any_store.add_bytes(DATA)
        with pytest.raises(ContentTooLarge):
            any_store.cat(cid, max_size=len(DATA) - 1)
        with pytest.raises(ContentNotFound):
            any_store.cat(CID.for_block(b"absent", codec=RAW))
        with pytest.raises(InvalidCID):
            any_store.cat("not-a-cid")


def test_cidv1_stores(tmp_path: Path, storage_server: StorageServer) -> None:
    expected = compute_cid(DATA, cid_version=1)
    assert LocalStore(tmp_path, cid_version=1).add_bytes(DATA) == expected
    with KuboStore(storage_server.multiaddr, cid_version=1) as remote:
        assert remote.add_bytes(DATA) == expected
        assert remote.cat(expected) == DATA


def _block_get_returning(body: bytes) -> dict[str, Callable[..., tuple[int, bytes]]]:
    return {"/api/v0/block/get": lambda _handler: (200, body)}


def test_tampering_daemon_is_caught(fake_daemon: FakeDaemonFactory) -> None:
    daemon = fake_daemon(_block_get_returning(b"not the requested bytes"))
    with KuboStore(daemon.url) as store, pytest.raises(IntegrityError, match="does not match"):
        store.cat(compute_cid(b"what we asked for", cid_version=1))


def test_daemon_lying_about_added_cid_is_caught(fake_daemon: FakeDaemonFactory) -> None:
    lie = json.dumps({"Name": "x", "Hash": compute_cid(b"other"), "Size": "13"}).encode()
    daemon = fake_daemon({"/api/v0/add": lambda _handler: (200, lie)})
    with KuboStore(daemon.url) as store, pytest.raises(IntegrityError, match="daemon reported"):
        store.add_bytes(b"our data")


def test_oversized_block_from_daemon(fake_daemon: FakeDaemonFactory) -> None:
    daemon = fake_daemon(_block_get_returning(bytes(1024 * 1024 + 1)))
    with KuboStore(daemon.url) as store, pytest.raises(ContentTooLarge, match="more than"):
        store.cat(compute_cid(b"small", cid_version=1))


def test_slow_daemon_times_out(fake_daemon: FakeDaemonFactory) -> None:
    daemon = fake_daemon(_block_get_returning(b"late"), delay=1.5)
    with KuboStore(daemon.url) as store, pytest.raises(FetchTimeout):
        store.cat(compute_cid(b"late", cid_version=1), timeout=0.3)


def test_daemon_error_for_missing_content(fake_daemon: FakeDaemonFactory) -> None:
    error = {"Message": "block was not found locally (offline): ipld: could not find x",
             "Code": 0, "Type": "error"}
    daemon = fake_daemon({"/api/v0/block/get": lambda _h: (500, json.dumps(error).encode())})
    with KuboStore(daemon.url) as store, pytest.raises(ContentNotFound, match="could not find"):
        store.cat(compute_cid(b"x", cid_version=1))


def test_unreachable_daemon() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with KuboStore(f"http://127.0.0.1:{port}") as store:
        with pytest.raises(StorageUnavailable):
            store.cat(compute_cid(b"x"), timeout=5)
        with pytest.raises(ConnectionError):
            store.add_bytes(b"x")


@pytest.mark.parametrize(("api", "expected"), [
    ("/ip4/127.0.0.1/tcp/5001/http", ("/ip4/127.0.0.1/tcp/5001/http", "api/v0")),
    ("http://127.0.0.1:5001", ("/ip4/127.0.0.1/tcp/5001/http", "api/v0")),
    ("https://ipfs.internal:8443/custom/api", ("/dns/ipfs.internal/tcp/8443/https", "custom/api")),
    ("http://[::1]:5001/", ("/ip6/::1/tcp/5001/http", "api/v0")),
])
def test_api_address_forms(api: str, expected: tuple[str, str]) -> None:
    assert api_address(api) == expected


def test_api_address_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="IPFS_API"):
        api_address("localhost:5001")


def test_open_store_selects_backend(tmp_path: Path) -> None:
    remote = open_store({"IPFS_API": "/ip4/127.0.0.1/tcp/5001/http"})
    assert isinstance(remote, KuboStore)
    remote.close()
    local = open_store({"DTM_HOME": str(tmp_path)})
    assert isinstance(local, LocalStore)
    assert local.blockstore.root == tmp_path / "ipfs"
    explicit = open_store({}, default_dir=tmp_path / "elsewhere")
    assert isinstance(explicit, LocalStore)
    assert explicit.blockstore.root == tmp_path / "elsewhere"
    assert default_store_dir({}) == Path("~/.dtm/ipfs").expanduser()
    assert default_store_dir({"DTM_HOME": "/srv/dtm"}) == Path("/srv/dtm/ipfs")
