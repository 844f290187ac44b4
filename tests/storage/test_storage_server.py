"""The RPC server, driven by the stock ipfshttpclient and by browser-style requests."""

from __future__ import annotations

import io
import json
import random
import socket
from pathlib import Path

import ipfshttpclient
import pytest
import requests

from offchain.storage import CHUNK_SIZE, CID, RAW, KuboStore, StorageServer, compute_cid
from offchain.storage.server import RpcHandler

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter:FutureWarning")

DATA = random.Random(5).randbytes(2 * CHUNK_SIZE + 17)


def api(server: StorageServer, command: str) -> str:
    return f"{server.url}/api/v0/{command}"


def test_version(ipfs_client: ipfshttpclient.Client) -> None:
    assert ipfs_client.version()["Version"] == "0.22.0"


def test_server__answers_without_waiting_for_the_clients_delayed_ack(storage_server: StorageServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers and body leave in separate writes: with Nagle's algorithm on a connection, every
    small answer waits for the client's delayed ACK of the headers (~40 ms on Linux), which made
    a trace of 584 nodes take 28 s to publish instead of 2.7 s."""
    seen = []
    setup = RpcHandler.setup

    def recording(handler: RpcHandler) -> None:
        setup(handler)
        seen.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(RpcHandler, "setup", recording)
    with KuboStore(storage_server.multiaddr) as store:
        store.add_bytes(b"one")
        store.add_bytes(b"two")
    assert seen and all(seen)


@pytest.mark.parametrize(("options", "cid_version", "raw_leaves"), [
    ({}, 0, None),
    ({"cid-version": 1}, 1, None),
    ({"cid-version": 0, "raw-leaves": "true"}, 0, True),
    ({"cid-version": 1, "raw-leaves": "false"}, 1, False),
])
def test_add_bytes_and_cat(ipfs_client: ipfshttpclient.Client, options: dict[str, object],
                           cid_version: int, raw_leaves: bool | None) -> None:
    cid = ipfs_client.add_bytes(DATA, opts=options)
    assert cid == compute_cid(DATA, cid_version=cid_version, raw_leaves=raw_leaves)
    assert ipfs_client.cat(cid) == DATA
    assert ipfs_client.cat(cid, offset=CHUNK_SIZE - 3, length=10) == DATA[CHUNK_SIZE - 3:][:10]


def test_add_file_reports_name_hash_and_size(ipfs_client: ipfshttpclient.Client,
                                             tmp_path: Path) -> None:
    path = tmp_path / "hello world.txt"
    path.write_bytes(b"hello world\n")
    result = ipfs_client.add(str(path))
    assert dict(result.as_json()) == {
        "Name": "hello world.txt",
        "Hash": "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        "Size": "20",
    }


def test_only_hash_and_pin_flags(ipfs_client: ipfshttpclient.Client,
                                 storage_server: StorageServer) -> None:
    hashed = ipfs_client.add_bytes(b"only hashed", opts={"only-hash": "true"})
    assert not storage_server.store.has(hashed)
    unpinned = ipfs_client.add_bytes(b"stored, not pinned", opts={"pin": "false"})
    assert storage_server.store.has(unpinned) and not storage_server.store.is_pinned(unpinned)
    assert ipfs_client.pin.add(unpinned)["Pins"] == [unpinned]
    assert storage_server.store.is_pinned(unpinned)


def test_block_get_and_put(ipfs_client: ipfshttpclient.Client) -> None:
    cid = ipfs_client.add_bytes(b"hello world\n")
    leaf = bytes.fromhex("0a120802120c") + b"hello world\n" + bytes.fromhex("180c")
    assert ipfs_client.block.get(cid) == leaf
    put = ipfs_client.block.put(io.BytesIO(b"a raw block"))
    assert put["Key"] == str(CID.for_block(b"a raw block", codec=RAW))
    assert put["Size"] == len(b"a raw block")
    assert ipfs_client.block.get(put["Key"]) == b"a raw block"
    legacy = ipfs_client.block.put(io.BytesIO(ipfs_client.block.get(cid)), opts={"format": "v0"})
    assert legacy["Key"] == cid


def test_bad_cid_is_a_kubo_style_error(storage_server: StorageServer,
                                       ipfs_client: ipfshttpclient.Client) -> None:
    with pytest.raises(ipfshttpclient.exceptions.ErrorResponse, match=r"invalid path.*CIDv0"):
        ipfs_client.cat("QmNotACid")
    response = requests.post(api(storage_server, "block/get"), params={"arg": "bafy???"})
    assert response.status_code == 500
    body = response.json()
    assert body["Type"] == "error" and body["Code"] == 0
    assert "invalid path" in body["Message"]


def test_missing_content_is_an_error(ipfs_client: ipfshttpclient.Client) -> None:
    absent = str(CID.for_block(b"nobody stored this", codec=RAW))
    for call in (ipfs_client.cat, ipfs_client.block.get, ipfs_client.pin.add):
        with pytest.raises(ipfshttpclient.exceptions.ErrorResponse, match="not found"):
            call(absent)


def test_missing_argument_and_unsupported_options(storage_server: StorageServer) -> None:
    response = requests.post(api(storage_server, "cat"))
    assert response.status_code == 400
    assert response.json()["Code"] == 1
    response = requests.post(api(storage_server, "add"), params={"chunker": "rabin"},
                             files={"file": ("a", b"a")})
    assert response.status_code == 400 and "chunker" in response.json()["Message"]


def test_only_post_is_accepted(storage_server: StorageServer) -> None:
    response = requests.get(api(storage_server, "version"))
    assert response.status_code == 405
    assert requests.post(api(storage_server, "swarm/peers")).status_code == 404


def test_browser_upload_and_cors(storage_server: StorageServer) -> None:
    origin = {"Origin": "http://localhost:3000"}
    preflight = requests.options(api(storage_server, "add"), headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    # A browser's FormData upload: Content-Length, no chunking, two files.
    response = requests.post(api(storage_server, "add"), headers=origin,
                             params={"cid-version": "1"},
                             files=[("file", ("a.bin", DATA)), ("file", ("b.txt", b"b"))])
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    lines = [line for line in response.text.splitlines() if line]
    assert len(lines) == 2
    cid = compute_cid(DATA, cid_version=1)
    assert [json.loads(line)["Name"] for line in lines] == ["a.bin", "b.txt"]
    assert json.loads(lines[0])["Hash"] == cid
    fetched = requests.post(api(storage_server, "cat"), params={"arg": cid}, headers=origin)
    assert fetched.content == DATA


def test_cors_origin_allow_list(tmp_path: Path) -> None:
    from offchain.storage import serve

    with serve(str(tmp_path), port=0, cors_origins=["https://dapp.example"]) as server:
        allowed = requests.post(api(server, "version"), headers={"Origin": "https://dapp.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://dapp.example"
        refused = requests.post(api(server, "version"), headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403
        assert requests.post(api(server, "version")).status_code == 200  # non-browser client


def test_corruption_mid_stream_breaks_the_transfer(storage_server: StorageServer,
                                                    ipfs_client: ipfshttpclient.Client) -> None:
    data = random.Random(9).randbytes(3 * CHUNK_SIZE)
    cid = ipfs_client.add_bytes(data, opts={"cid-version": 1})
    last_leaf = CID.for_block(data[-CHUNK_SIZE:], codec=RAW)
    path = storage_server.store._block_path(last_leaf)
    path.write_bytes(b"X" * CHUNK_SIZE)
    with pytest.raises((ipfshttpclient.exceptions.Error, requests.exceptions.RequestException)):
        ipfs_client.cat(cid)


def test_upload_limit(tmp_path: Path) -> None:
    from offchain.storage import serve

    with serve(str(tmp_path), port=0, max_upload_size=1000) as server:
        response = requests.post(api(server, "add"), files={"file": ("big", bytes(5000))})
        assert response.status_code == 413
        assert "exceeds" in response.json()["Message"]
