"""A disputed step's trace in the content store, one node at a time.

The solver publishes every node output as its own safetensors object as the step computes it
(:class:`TraceWriter`; the output is then freed unless a later node reads it) and one index (JSON:
the format, each node's tensor root and CID, in node order); ``commit_trace`` names the index. The
challenger reads the index, checks that its roots hash to the trace root committed on chain, and
fetches a node's output only when its search reaches it, checking it against its root — so no
trace, however large, has to fit one artifact or one machine's memory at once, and a node that
does not match its root is the publisher's fault, named in one line.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from offchain.ml import merkle_root, trace_roots
from offchain.storage import MAX_ARTIFACT_BYTES, ContentStore

FORMAT = "dtm-trace/1"
MAX_INDEX_BYTES = 64 * 1024 * 1024
#: fetched node outputs kept in memory (least recently used dropped first)
CACHE_BYTES = 512 * 1024 * 1024


class TraceError(ValueError):
    """A published trace that does not match what the solver committed."""


class TraceWriter:
    """Publishes a trace as it is computed: :meth:`add` each node's output once it exists (in any
    order; the caller may free it afterwards), then :meth:`finish` adds the index."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self._nodes: dict[int, tuple[bytes, str]] = {}

    def add(self, node: int, output: torch.Tensor) -> None:
        output = output.detach().cpu().contiguous()
        blob = save_tensors({"out": output.clone()})  # a view's storage may be larger than it
        self._nodes[node] = trace_roots([output])[0], self.store.add_bytes(blob)

    def finish(self) -> tuple[str, bytes]:
        """The index's CID and the trace root, once every node from 0 on has been added."""
        if sorted(self._nodes) != list(range(len(self._nodes))):
            raise TraceError(f"the trace lacks node {min(set(range(len(self._nodes) + 1)) - set(self._nodes))}")
        roots, cids = zip(*(self._nodes[i] for i in range(len(self._nodes)))) if self._nodes else ((), ())
        index = {"format": FORMAT, "roots": [r.hex() for r in roots], "cids": list(cids)}
        return self.store.add_bytes(json.dumps(index, separators=(",", ":")).encode()), merkle_root(list(roots))


def publish_trace(store: ContentStore, trace: Sequence[torch.Tensor]) -> str:
    """Add every node output and the index to ``store``; the index's CID."""
    writer = TraceWriter(store)
    for node, output in enumerate(trace):
        writer.add(node, output)
    return writer.finish()[0]


class StreamedTrace(Sequence):
    """A published trace read on demand: ``roots`` from the index (checked against
    ``trace_root``), each output fetched and checked when first indexed."""

    def __init__(self, store: ContentStore, cid: str, trace_root: bytes, cache_bytes: int = CACHE_BYTES) -> None:
        try:
            index = json.loads(store.cat(cid, max_size=MAX_INDEX_BYTES))
            roots = [bytes.fromhex(r) for r in index["roots"]]
            cids = [str(c) for c in index["cids"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise TraceError(f"the published trace index {cid} is malformed: {exc}") from exc
        if index.get("format") != FORMAT or len(roots) != len(cids) or any(len(r) != 32 for r in roots):
            raise TraceError(f"the published trace index {cid} is malformed")
        if merkle_root(roots) != trace_root:
            raise TraceError("the published trace does not match the committed trace root")
        self.store, self.cid, self.roots, self._cids = store, cid, roots, cids
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cached, self._budget = 0, cache_bytes

    def __len__(self) -> int:
        return len(self._cids)

    def __getitem__(self, node: int) -> torch.Tensor:  # type: ignore[override]
        if isinstance(node, slice):
            return [self[i] for i in range(*node.indices(len(self)))]
        if not -len(self) <= node < len(self):
            raise IndexError(node)
        node %= len(self)
        if node in self._cache:
            self._cache.move_to_end(node)
            return self._cache[node]
        try:
            tensor = load_tensors(self.store.cat(self._cids[node], max_size=MAX_ARTIFACT_BYTES))["out"]
        except Exception as exc:  # noqa: BLE001 - whatever the publisher sent, it is its fault
            raise TraceError(f"node {node} of the published trace is unreadable: {exc}") from exc
        if trace_roots([tensor])[0] != self.roots[node]:
            raise TraceError(f"node {node} of the published trace does not match its root")
        self._cache[node] = tensor
        self._cached += tensor.numel() * tensor.element_size()
        while self._cached > self._budget and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached -= dropped.numel() * dropped.element_size()
        return tensor
