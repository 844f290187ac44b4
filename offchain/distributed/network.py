"""Devices and the network between them: speeds, latencies and bandwidths.

A `Network` holds N devices' compute speeds (FLOP/s) and two symmetric N×N
matrices: one-way latency (seconds) and bandwidth (bytes/s) between every pair.
The diagonal is ignored (a device does not send to itself).

Network file (JSON), parsed strictly by `load_network`::

    {
      "devices":   [{"name": "oregon-0", "flops": 1.25e14}, ...],
      "latency":   [[0, 0.067, ...], ...],      # seconds, N×N, symmetric, ≥ 0
      "bandwidth": [[0, 9.9e7, ...], ...]       # bytes/s, N×N, symmetric, > 0 off the diagonal
    }

No other keys are allowed; names are unique non-empty strings; every number is
finite. Any violation raises `SchedulerError` with a one-line message that
names the file and the offending entry.

The scenarios are those of DT-FM's evaluation (Yuan et al., "Decentralized
Training of Foundation Models in Heterogeneous Environments", NeurIPS 2022,
§5 and its scheduler's simulation settings), with their delays (ms) and
bandwidths (Gbit/s) converted to seconds and bytes/s. Every device is a V100
(DT-FM's testbed) unless a scenario says otherwise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = [
    "AWS_LINKS", "SCENARIOS", "A100_FLOPS", "Network", "SchedulerError", "T4_FLOPS", "V100_FLOPS",
    "datacenter", "load_network", "mixed_gpus", "multi_universities", "regional", "save_network",
    "spot_instances", "world_wide",
]

V100_FLOPS = 125e12  # peak fp16 tensor-core FLOP/s
A100_FLOPS = 312e12
T4_FLOPS = 65e12


class SchedulerError(ValueError):
    """A malformed network, workload or request; its message is one line."""


def gbps(x: float) -> float:
    """Gbit/s → bytes/s."""
    return x * 1e9 / 8


@dataclass(frozen=True, eq=False)
class Network:
    """N devices: `flops[i]` (FLOP/s), `latency[i, j]` (s), `bandwidth[i, j]` (bytes/s)."""

    names: tuple[str, ...]
    flops: np.ndarray
    latency: np.ndarray
    bandwidth: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.names)
        flops = np.asarray(self.flops, dtype=float)
        latency = np.array(self.latency, dtype=float)
        bandwidth = np.array(self.bandwidth, dtype=float)
        if n == 0:
            raise SchedulerError("a network needs at least one device")
        if len(set(self.names)) != n:
            raise SchedulerError("device names must be unique")
        if flops.shape != (n,) or latency.shape != (n, n) or bandwidth.shape != (n, n):
            raise SchedulerError(f"{n} devices need {n} speeds and {n}×{n} latency and bandwidth matrices")
        off = ~np.eye(n, dtype=bool)
        if not (np.all(np.isfinite(flops)) and np.all(flops > 0)):
            raise SchedulerError("device speeds must be finite and positive")
        if not (np.all(np.isfinite(latency[off])) and np.all(latency[off] >= 0)):
            raise SchedulerError("latencies must be finite and non-negative")
        if not (np.all(np.isfinite(bandwidth[off])) and np.all(bandwidth[off] > 0)):
            raise SchedulerError("bandwidths must be finite and positive")
        if not (np.array_equal(latency, latency.T) and np.array_equal(bandwidth[off], bandwidth.T[off])):
            raise SchedulerError("latency and bandwidth matrices must be symmetric")
        np.fill_diagonal(latency, 0.0)
        np.fill_diagonal(bandwidth, np.inf)
        for a in (flops, latency, bandwidth):
            a.flags.writeable = False
        object.__setattr__(self, "flops", flops)
        object.__setattr__(self, "latency", latency)
        object.__setattr__(self, "bandwidth", bandwidth)

    @property
    def size(self) -> int:
        return len(self.names)

    def with_flops(self, flops: np.ndarray | list[float]) -> Network:
        """The same links with other device speeds."""
        return Network(self.names, np.asarray(flops, dtype=float), self.latency, self.bandwidth)

    def to_json(self) -> dict[str, Any]:
        bandwidth = self.bandwidth.copy()
        np.fill_diagonal(bandwidth, 0.0)
        return {
            "devices": [{"name": name, "flops": float(f)} for name, f in zip(self.names, self.flops)],
            "latency": self.latency.tolist(),
            "bandwidth": bandwidth.tolist(),
        }


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchedulerError(f"{where} must be a finite number, got {json.dumps(value)[:40]}")
    return float(value)


def _matrix(doc: dict[str, Any], key: str, n: int, source: str, positive: bool) -> np.ndarray:
    rows = doc[key]
    if not isinstance(rows, list) or len(rows) != n:
        raise SchedulerError(f"{source}: {key} must be a list of {n} rows (one per device)")
    out = np.zeros((n, n))
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n:
            raise SchedulerError(f"{source}: {key}[{i}] must be a list of {n} numbers")
        for j, value in enumerate(row):
            x = _number(value, f"{source}: {key}[{i}][{j}]")
            if i != j and (x <= 0 if positive else x < 0):
                raise SchedulerError(f"{source}: {key}[{i}][{j}] must be {'> 0' if positive else '≥ 0'}, got {x:g}")
            out[i, j] = x
    for i in range(n):
        for j in range(i + 1, n):
            if out[i, j] != out[j, i]:
                raise SchedulerError(f"{source}: {key} is not symmetric: "
                                     f"[{i}][{j}]={out[i, j]:g}, [{j}][{i}]={out[j, i]:g}")
    return out


def parse_network(doc: Any, source: str = "network") -> Network:
    """A `Network` from a decoded network file (see the module docstring)."""
    if not isinstance(doc, dict):
        raise SchedulerError(f"{source}: the top level must be an object with devices, latency and bandwidth")
    missing = [k for k in ("devices", "latency", "bandwidth") if k not in doc]
    if missing:
        raise SchedulerError(f"{source}: missing key {missing[0]!r}")
    extra = sorted(set(doc) - {"devices", "latency", "bandwidth"})
    if extra:
        raise SchedulerError(f"{source}: unknown key {extra[0]!r}")
    devices = doc["devices"]
    if not isinstance(devices, list) or not devices:
        raise SchedulerError(f"{source}: devices must be a non-empty list")
    names: list[str] = []
    flops: list[float] = []
    for i, device in enumerate(devices):
        if not isinstance(device, dict) or set(device) != {"name", "flops"}:
            raise SchedulerError(f"{source}: devices[{i}] must be an object with exactly name and flops")
        name = device["name"]
        if not isinstance(name, str) or not name:
            raise SchedulerError(f"{source}: devices[{i}].name must be a non-empty string")
        if name in names:
            raise SchedulerError(f"{source}: devices[{i}].name {name!r} is a duplicate")
        f = _number(device["flops"], f"{source}: devices[{i}].flops")
        if f <= 0:
            raise SchedulerError(f"{source}: devices[{i}].flops must be > 0, got {f:g}")
        names.append(name)
        flops.append(f)
    n = len(names)
    latency = _matrix(doc, "latency", n, source, positive=False)
    bandwidth = _matrix(doc, "bandwidth", n, source, positive=True)
    return Network(tuple(names), np.array(flops), latency, bandwidth)


def load_network(path: str | Path) -> Network:
    """Read and validate a network file; every problem is a one-line `SchedulerError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SchedulerError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchedulerError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return parse_network(doc, str(path))


def save_network(network: Network, path: str | Path) -> None:
    Path(path).write_text(json.dumps(network.to_json(), indent=1) + "\n")


# --- DT-FM's scenarios --------------------------------------------------------------------------

#: One-way delay (ms) and bandwidth (Gbit/s) between AWS regions, as measured in DT-FM.
AWS_LINKS: dict[tuple[str, str], tuple[float, float]] = {
    ("Oregon", "Virginia"): (67, 0.79), ("Oregon", "Ohio"): (49, 1.10), ("Oregon", "Tokyo"): (96, 0.523),
    ("Oregon", "Seoul"): (124, 0.46), ("Oregon", "Singapore"): (163, 0.341), ("Oregon", "Sydney"): (139, 0.36),
    ("Oregon", "London"): (136, 0.42), ("Oregon", "Frankfurt"): (143, 0.404), ("Oregon", "Ireland"): (124, 0.482),
    ("Virginia", "Ohio"): (11, 1.12), ("Virginia", "Tokyo"): (143, 0.524), ("Virginia", "Seoul"): (172, 0.500),
    ("Virginia", "Singapore"): (230, 0.364), ("Virginia", "Sydney"): (197, 0.383),
    ("Virginia", "London"): (76, 1.16), ("Virginia", "Frankfurt"): (90, 1.02), ("Virginia", "Ireland"): (67, 1.05),
    ("Ohio", "Tokyo"): (130, 0.694), ("Ohio", "Seoul"): (159, 0.529), ("Ohio", "Singapore"): (197, 0.452),
    ("Ohio", "Sydney"): (185, 0.484), ("Ohio", "London"): (86, 1.05), ("Ohio", "Frankfurt"): (99, 0.799),
    ("Ohio", "Ireland"): (77, 1.14), ("Tokyo", "Seoul"): (34, 1.10), ("Tokyo", "Singapore"): (73, 1.01),
    ("Tokyo", "Sydney"): (100, 0.761), ("Tokyo", "London"): (210, 0.366), ("Tokyo", "Frankfurt"): (223, 0.36),
    ("Tokyo", "Ireland"): (199, 0.465), ("Seoul", "Singapore"): (74, 1.14), ("Seoul", "Sydney"): (148, 0.58),
    ("Seoul", "London"): (238, 0.342), ("Seoul", "Frankfurt"): (235, 0.358), ("Seoul", "Ireland"): (228, 0.335),
    ("Singapore", "Sydney"): (92, 0.816), ("Singapore", "London"): (169, 0.500),
    ("Singapore", "Frankfurt"): (155, 0.535), ("Singapore", "Ireland"): (179, 0.492),
    ("Sydney", "London"): (262, 0.326), ("Sydney", "Frankfurt"): (265, 0.328), ("Sydney", "Ireland"): (254, 0.344),
    ("London", "Frankfurt"): (14, 1.14), ("London", "Ireland"): (12, 1.09), ("Frankfurt", "Ireland"): (24, 1.08),
    # Regional scenario's California links (DT-FM case 3).
    ("Virginia", "California"): (59, 1.05), ("Oregon", "California"): (12, 1.25),
    ("California", "Ohio"): (52, 1.02),
}
#: Between two machines of the same region (DT-FM's assumption for geo-distributed cases).
SAME_REGION = (5.0, 2.0)


def _regions(regions: list[str], within: tuple[float, float] = SAME_REGION,
             between: Callable[[str, str], tuple[float, float]] | None = None,
             flops: float = V100_FLOPS) -> Network:
    n = len(regions)
    delay_ms = np.zeros((n, n))
    bw_gbps = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            a, b = regions[i], regions[j]
            if a == b:
                d, w = within
            elif between is not None:
                d, w = between(a, b)
            else:
                d, w = AWS_LINKS[(a, b)] if (a, b) in AWS_LINKS else AWS_LINKS[(b, a)]
            delay_ms[i, j], bw_gbps[i, j] = d, w
    counts: dict[str, int] = {}
    names = []
    for r in regions:
        names.append(f"{r}-{counts.get(r, 0)}")
        counts[r] = counts.get(r, 0) + 1
    return Network(tuple(names), np.full(n, flops), delay_ms / 1e3, gbps(bw_gbps))


def datacenter(n: int = 64) -> Network:
    """Case 1, on-demand data centre: 8-GPU instances, 100 Gbit/s inside, 3.125 Gbit/s between, no delay."""
    per = min(n // 2, 8)
    return _regions([f"instance{i // per}" for i in range(n)], within=(0.0, 100.0), between=lambda a, b: (0.0, 3.125))


def spot_instances(n: int = 64, instances: int = 8, per: int = 4) -> Network:
    """Case 2, spot data centre: `instances` 4-GPU instances (100 Gbit/s inside), the rest
    single-GPU; 1.25 Gbit/s between any two machines, no delay."""
    regions = [f"spot{i // per}" if i // per < instances else f"single{i}" for i in range(n)]
    return _regions(regions, within=(0.0, 100.0), between=lambda a, b: (0.0, 1.25))


def multi_universities(n: int = 64) -> Network:
    """Case 3, two campuses (Ohio, Virginia): 1 ms and 5 Gbit/s inside, 11 ms and 1.12 Gbit/s between."""
    return _regions(["Ohio" if i < n // 2 else "Virginia" for i in range(n)], within=(1.0, 5.0))


def regional(n: int = 64) -> Network:
    """Case 4, regional geo-distribution: four US regions (Virginia, Oregon, California, Ohio), n/4 each."""
    cities = ["Virginia", "Oregon", "California", "Ohio"]
    return _regions([cities[i * 4 // n] for i in range(n)])


def world_wide(n: int = 64) -> Network:
    """Case 5, world-wide geo-distribution: eight AWS regions on three continents, n/8 each."""
    cities = ["Oregon", "Virginia", "Ohio", "Tokyo", "Seoul", "London", "Frankfurt", "Ireland"]
    return _regions([cities[i * 8 // n] for i in range(n)])


def mixed_gpus(network: Network) -> Network:
    """The same network with A100, V100 and T4 in turn (device i gets the (i mod 3)-th)."""
    kinds = np.array([A100_FLOPS, V100_FLOPS, T4_FLOPS])
    return network.with_flops(kinds[np.arange(network.size) % 3])


#: Name → builder (of n devices, 64 by default) of DT-FM's five scenarios and two heterogeneous-speed variants.
SCENARIOS: dict[str, Callable[..., Network]] = {
    "data centre": datacenter,
    "spot instances": spot_instances,
    "multi universities": multi_universities,
    "regional geo": regional,
    "world-wide geo": world_wide,
    "data centre, mixed GPUs": lambda n=64: mixed_gpus(datacenter(n)),
    "world-wide, mixed GPUs": lambda n=64: mixed_gpus(world_wide(n)),
}
