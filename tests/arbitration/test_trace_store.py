"""A disputed step's trace published one node at a time (`offchain/dispute/trace_store.py`): the
challenger reads the index against the committed trace root and each node against its root, on
demand; whatever does not match is refused in one line, naming the node."""

from __future__ import annotations

import json
import weakref

import pytest
import torch
from program_testing import STEP, setup
from safetensors.torch import save as save_tensors

from offchain.dispute.program_moves import find_program_proof
from offchain.dispute.trace_store import StreamedTrace, TraceError, TraceWriter, publish_trace
from offchain.ml import merkle_root, trace_roots
from offchain.ml.train import step_trace
from offchain.storage.store import LocalStore


class CountingStore(LocalStore):
    """The local store, counting the objects read."""

    reads = 0

    def cat(self, cid, **kwargs):
        self.reads += 1
        return super().cat(cid, **kwargs)


@pytest.fixture
def published(tmp_path):
    s = setup("gpt")
    store = CountingStore(tmp_path / "ipfs")
    return s, store, publish_trace(store, s.trace)


def test_trace_store__nodes_are_read_on_demand_and_equal_the_trace(published):
    s, store, cid = published
    trace = StreamedTrace(store, cid, merkle_root(trace_roots(s.trace)))
    assert store.reads == 1 and len(trace) == len(s.trace)   # the index alone
    node = len(s.trace) // 2
    assert torch.equal(trace[node], s.trace[node]) and store.reads == 2
    assert torch.equal(trace[node], s.trace[node]) and store.reads == 2  # cached
    assert all(torch.equal(a, b) for a, b in zip(trace, s.trace))
    assert trace.roots == trace_roots(s.trace)


def test_trace_store__a_small_cache_drops_the_least_recently_read(published):
    s, store, cid = published
    trace = StreamedTrace(store, cid, merkle_root(trace_roots(s.trace)), cache_bytes=1)
    trace[3], trace[4]
    reads = store.reads
    trace[4]
    assert store.reads == reads  # the last read stays
    trace[3]
    assert store.reads == reads + 1


def test_trace_store__the_challenger_search_runs_on_the_streamed_trace(published):
    """An honest trace read from the store gives the challenger nothing to prove, as the trace
    held in memory does."""
    s, store, cid = published
    data = s.data(StreamedTrace(store, cid, merkle_root(trace_roots(s.trace))))
    assert find_program_proof("0x" + "11" * 20, 1, data, s.after_root(s.trace)) is None


def test_trace_store__a_wrong_index_or_node_is_refused_in_one_line(published):
    s, store, cid = published
    root = merkle_root(trace_roots(s.trace))
    with pytest.raises(TraceError, match="does not match the committed trace root"):
        StreamedTrace(store, cid, bytes(32))
    with pytest.raises(TraceError, match="malformed"):
        StreamedTrace(store, store.add_bytes(b"{not json"), root)
    index = json.loads(store.cat(cid))
    index["cids"][5] = store.add_bytes(save_tensors({"out": s.trace[5] + 1}))
    forged = StreamedTrace(store, store.add_bytes(json.dumps(index).encode()), root)
    assert torch.equal(forged[4], s.trace[4])
    with pytest.raises(TraceError, match="node 5 of the published trace does not match its root"):
        forged[5]
    index["cids"][6] = store.add_bytes(b"not safetensors")
    with pytest.raises(TraceError, match="node 6 of the published trace is unreadable"):
        StreamedTrace(store, store.add_bytes(json.dumps(index).encode()), root)[6]



def _step(name):
    """(demo, state, step, kept trace): a program family's step 0."""
    s = setup(name)
    return s.demo, s.state, STEP, s.trace


def _streamed(demo, state, step, store, on_node=None):
    """The step's trace derived with every output published as it is computed."""
    writer = TraceWriter(store)

    def add(node, output):
        writer.add(node, output)
        if on_node is not None:
            on_node(node, output)

    step_trace(demo.graph, demo.task, demo.dataset, state, step, on_node=add)
    return writer.finish()


@pytest.mark.parametrize("name", ["gpt", "cnn", "mlp"])
def test_trace_store__a_trace_streamed_as_computed_is_the_trace_kept_whole(name, tmp_path):
    demo, state, step, trace = _step(name)
    store = LocalStore(tmp_path / "ipfs")
    cid, root = _streamed(demo, state, step, store)
    assert cid == publish_trace(store, trace)  # the same objects and index, byte for byte
    assert root == merkle_root(trace_roots(trace))


def test_trace_store__streaming_holds_only_the_live_outputs(tmp_path):
    """While the solver publishes a transformer's trace, what it holds at once (the outputs later
    nodes still read) stays well under the whole trace."""
    demo, state, step, trace = _step("gpt-positions")
    held: list[weakref.ref] = []
    sizes: dict[int, int] = {}
    peak = 0

    def watch(node, output):
        nonlocal peak
        held.append(weakref.ref(output))
        sizes[id(output)] = output.numel() * output.element_size()
        peak = max(peak, sum(sizes[id(t)] for ref in held if (t := ref()) is not None))

    _streamed(demo, state, step, LocalStore(tmp_path / "ipfs"), watch)
    whole = sum(t.numel() * t.element_size() for t in trace)
    assert 0 < peak < 0.6 * whole, (peak, whole)
