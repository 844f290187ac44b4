"""Scheduling one training task over many machines: pipeline stages × data-parallel replicas.

N = stages × replicas devices are split into `stages` data-parallel groups of
`replicas` devices each; the groups are put in a pipeline order, and adjacent
groups are matched device to device so that replica r's pipeline runs through
`stages[0][r], stages[1][r], …`. Each stage holds a contiguous block of layers.

Cost of one training step (seconds; see docs/distributed.md):

* compute: stage s runs `layers[s] · flops_per_layer / min speed of its group`
  per micro-batch; a GPipe step over M micro-batches takes Σ_s t_s + (M−1)·max_s t_s;
* data parallel: each stage all-reduces its gradients inside its group, every
  device sending a 1/R shard to each peer twice (reduce-scatter, all-gather):
  max over stages and devices i of Σ_{j≠i} 2·(lat_ij + g_s / (R·bw_ij)), with
  g_s = layers[s]·parameter_bytes / gradient_compression, divided by
  `sync_every` (an outer sync every H steps, as in DiLoCo);
* pipeline: each stage boundary carries M micro-batches of activations forward
  and their gradients backward; the boundary costs its slowest matched link:
  2·Σ_boundaries max_r (lat + M·activation_bytes / (activation_compression·bw)).

With one micro-batch, no compression, equal layers and no compute this is the
cost that DT-FM's scheduler minimises (Yuan et al., NeurIPS 2022).

Search (`dtfm_search`): DT-FM's — a genetic algorithm (GCMA: five-point
crossover, a balancing repair, cyclic-partitioning local search) over balanced
partitions; each partition's pipeline order is an exact open-loop TSP over the
groups and each boundary a bottleneck matching. `schedule` runs the same GCMA on
the full cost, seeded with DT-FM's result and structured partitions, then
device swaps between groups and layer moves between stages. It never returns
a schedule costlier than `dtfm_search`'s.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from offchain.distributed.network import Network, SchedulerError

__all__ = [
    "Cost", "Schedule", "SearchResult", "Workload", "brute_force", "dtfm_search", "evaluate",
    "in_order_schedule", "random_schedule", "schedule",
]

EXACT_TSP_MAX = 12  # open-loop TSP solved exactly (Held-Karp) up to this many stages


@dataclass(frozen=True)
class Workload:
    """One training task: a transformer of `layers` equal layers.

    flops_per_layer: FLOPs of one layer's forward and backward pass on one micro-batch.
    activation_bytes: bytes of one micro-batch's activations crossing a stage boundary.
    parameter_bytes: bytes of one layer's gradients as exchanged by the data-parallel sync.
    activation_compression / gradient_compression: how many times fewer bytes are sent
    (4.0 for 4-bit activations instead of fp16). sync_every: steps per data-parallel sync (H).
    """

    layers: int
    flops_per_layer: float
    activation_bytes: float
    parameter_bytes: float
    micro_batches: int
    stages: int
    replicas: int
    activation_compression: float = 1.0
    gradient_compression: float = 1.0
    sync_every: int = 1

    def __post_init__(self) -> None:
        for name in ("layers", "micro_batches", "stages", "replicas", "sync_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SchedulerError(f"workload {name} must be a positive integer, got {value!r}")
        for name in ("flops_per_layer", "activation_bytes", "parameter_bytes"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise SchedulerError(f"workload {name} must be a finite number ≥ 0, got {getattr(self, name)!r}")
        for name in ("activation_compression", "gradient_compression"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise SchedulerError(f"workload {name} must be a finite number > 0, got {getattr(self, name)!r}")
        if self.layers < self.stages:
            raise SchedulerError(f"{self.layers} layers cannot fill {self.stages} stages")

    @property
    def devices(self) -> int:
        return self.stages * self.replicas

    @classmethod
    def gpt3_xl(cls, stages: int = 8, replicas: int = 8, **changes: float) -> Workload:
        """DT-FM's benchmark model: GPT-3 XL (1.3 B parameters, 24 layers, width 2048),
        2048-token sequences in fp16, one sequence per micro-batch, 64 per pipeline,
        fp32 gradients."""
        hidden, seq = 2048, 2048
        forward = 24 * hidden**2 * seq + 4 * seq**2 * hidden  # one layer, one sequence
        base = dict(layers=24, flops_per_layer=3.0 * forward, activation_bytes=seq * hidden * 2.0,
                    parameter_bytes=1.3e9 * 4 / 24, micro_batches=64, stages=stages, replicas=replicas)
        base.update(changes)
        return cls(**base)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Cost:
    compute: float
    data_parallel: float
    pipeline: float

    @property
    def total(self) -> float:
        return self.compute + self.data_parallel + self.pipeline


@dataclass(frozen=True)
class Schedule:
    """`stages[s][r]`: the device of replica r at pipeline stage s (stages in pipeline order);
    `layers[s]`: how many consecutive layers stage s holds."""

    stages: tuple[tuple[int, ...], ...]
    layers: tuple[int, ...]
    cost: Cost

    def pipelines(self) -> list[tuple[int, ...]]:
        """Each replica's devices, first stage to last."""
        return [tuple(group[r] for group in self.stages) for r in range(len(self.stages[0]))]

    def describe(self, names: Sequence[str]) -> str:
        lines = [f"cost {self.cost.total:.3f} s/step = compute {self.cost.compute:.3f} + data parallel "
                 f"{self.cost.data_parallel:.3f} + pipeline {self.cost.pipeline:.3f}"]
        first = 0
        for s, (group, n) in enumerate(zip(self.stages, self.layers)):
            lines.append(f"stage {s} (layers {first}-{first + n - 1}): " + ", ".join(names[d] for d in group))
            first += n
        return "\n".join(lines)


@dataclass(frozen=True)
class SearchResult:
    schedule: Schedule
    seconds: float
    evaluations: int
    history: tuple[float, ...] = field(default=(), repr=False)  # the GCMA's best fitness after each trial


# --- cost model ---------------------------------------------------------------------------------

def _check(network: Network, workload: Workload) -> None:
    if workload.devices != network.size:
        raise SchedulerError(f"{workload.stages} stages × {workload.replicas} replicas = {workload.devices} "
                             f"devices, the network has {network.size}")


def balance_layers(speeds: np.ndarray, layers: int) -> np.ndarray:
    """Layers per stage minimising the slowest stage's time max_s L_s / speed_s (each L_s ≥ 1).

    Handing out layers one at a time to the stage that would finish it soonest is optimal
    for this bottleneck objective."""
    speeds = np.asarray(speeds, dtype=float)
    n = len(speeds)
    counts = np.ones(n, dtype=int)
    # Start near the proportional share, then fill greedily.
    share = np.maximum(1, np.floor(layers * speeds / speeds.sum()).astype(int) - 1)
    if share.sum() <= layers:
        counts = share
    for _ in range(layers - int(counts.sum())):
        counts[int(np.argmin((counts + 1) / speeds))] += 1
    # The proportional start may not be the greedy's own prefix: even out what it overshot.
    while True:
        finish = counts / speeds
        worst = int(np.argmax(finish))
        best = int(np.argmin((counts + 1) / speeds))
        if counts[worst] > 1 and (counts[best] + 1) / speeds[best] < finish[worst] and best != worst:
            counts[worst] -= 1
            counts[best] += 1
        else:
            return counts


def equal_layers(layers: int, stages: int) -> np.ndarray:
    base, extra = divmod(layers, stages)
    return np.array([base + (1 if s < extra else 0) for s in range(stages)])


def _compute_cost(workload: Workload, speeds: np.ndarray, layers: np.ndarray) -> float:
    t = layers * workload.flops_per_layer / speeds
    return float(t.sum() + (workload.micro_batches - 1) * t.max())


def _edge_costs(network: Network, workload: Workload) -> np.ndarray:
    """One boundary link's cost per direction: latency plus M micro-batches of activations."""
    size = workload.micro_batches * workload.activation_bytes / workload.activation_compression
    cost = network.latency + size / network.bandwidth
    np.fill_diagonal(cost, 0.0)
    return cost


def _dp_cost(network: Network, workload: Workload, group: Sequence[int], layers: float) -> float:
    if len(group) < 2:
        return 0.0
    g = np.asarray(group)
    grad = layers * workload.parameter_bytes / workload.gradient_compression
    lat = network.latency[np.ix_(g, g)]
    inv = 1.0 / network.bandwidth[np.ix_(g, g)]  # diagonal: 1/inf = 0
    per_device = 2.0 * (lat.sum(1) + grad / len(g) * inv.sum(1))
    return float(per_device.max()) / workload.sync_every


def evaluate(network: Network, workload: Workload, stages: Sequence[Sequence[int]],
             layers: Sequence[int]) -> Cost:
    """The cost of an explicit layout: `stages[s][r]` in pipeline order, `layers[s]` per stage."""
    _check(network, workload)
    grid = np.asarray(stages, dtype=int)
    if grid.shape != (workload.stages, workload.replicas):
        raise SchedulerError(f"a layout must be {workload.stages} stages of {workload.replicas} devices")
    if sorted(grid.ravel().tolist()) != list(range(network.size)):
        raise SchedulerError("a layout must use every device exactly once")
    lay = np.asarray(layers, dtype=int)
    if lay.shape != (workload.stages,) or lay.min() < 1 or lay.sum() != workload.layers:
        raise SchedulerError(f"layers must be {workload.stages} positive counts summing to {workload.layers}")
    speeds = network.flops[grid].min(1)
    edges = _edge_costs(network, workload)
    pipeline = 2.0 * sum(float(edges[grid[s], grid[s + 1]].max()) for s in range(workload.stages - 1))
    dp = max(_dp_cost(network, workload, grid[s], lay[s]) for s in range(workload.stages))
    return Cost(_compute_cost(workload, speeds, lay), dp, pipeline)


# --- exact subproblems: bottleneck matching, open-loop TSP -------------------------------------

def _perfect_matching(allowed: np.ndarray) -> list[int] | None:
    """A perfect matching (row i → column match[i]) in a bipartite graph, or None (Kuhn)."""
    n = allowed.shape[0]
    adjacency = [[j for j, ok in enumerate(row) if ok] for row in allowed.tolist()]
    owner = [-1] * n

    def augment(i: int, seen: list[bool]) -> bool:
        for j in adjacency[i]:
            if not seen[j]:
                seen[j] = True
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(n):
        if not adjacency[i] or not augment(i, [False] * n):
            return None
    match = [0] * n
    for j, i in enumerate(owner):
        match[i] = j
    return match


def bottleneck_matching(cost: np.ndarray) -> tuple[float, list[int]]:
    """A perfect matching minimising its largest edge cost: (that cost, row → column)."""
    n = cost.shape[0]
    if n == 1:
        return float(cost[0, 0]), [0]
    floor = max(cost.min(1).max(), cost.min(0).max())  # no matching can do better
    best = _perfect_matching(cost <= floor)
    if best is not None:
        return float(floor), best
    values = np.unique(cost[cost > floor])
    lo, hi = 0, len(values) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        match = _perfect_matching(cost <= values[mid])
        if match is None:
            lo = mid + 1
        else:
            hi, best = mid, match
    if best is None:
        best = _perfect_matching(cost <= values[lo])
    assert best is not None
    return float(values[lo]), best


def open_tsp(cost: np.ndarray) -> tuple[float, list[int]]:
    """The cheapest path through every node (any start, any end) of a symmetric cost matrix.

    Exact (Held-Karp, vectorised over subsets of each size) up to EXACT_TSP_MAX nodes;
    beyond that, nearest neighbour from every start improved by 2-opt."""
    n = cost.shape[0]
    if n == 1:
        return 0.0, [0]
    if n > EXACT_TSP_MAX:
        return _tsp_heuristic(cost)
    full = 1 << n
    bits = 1 << np.arange(n)
    dp = np.full((full, n), np.inf)
    dp[bits, np.arange(n)] = 0.0
    for masks, prev, inside in _subset_tables(n):
        # dp[m, k]: cheapest path over the nodes of m ending at k = best over j of dp[m − k, j] + cost[j, k]
        step = (dp[prev] + cost.T[None, :, :]).min(2)
        step[~inside] = np.inf
        dp[masks] = step
    last = dp[full - 1]
    end = int(np.argmin(last))
    total = float(last[end])
    path = [end]
    mask = full - 1
    while len(path) < n:
        k = path[-1]
        prev_mask = mask ^ (1 << k)
        candidates = dp[prev_mask] + cost[:, k]
        j = int(np.argmin(np.where((prev_mask & bits) != 0, candidates, np.inf)))
        path.append(j)
        mask = prev_mask
    return total, path[::-1]


@functools.lru_cache(maxsize=None)
def _subset_tables(n: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each subset size ≥ 2: the subsets, each minus each node, and which nodes are in it."""
    bits = 1 << np.arange(n)
    popcount = np.array([bin(m).count("1") for m in range(1 << n)])
    tables = []
    for size in range(2, n + 1):
        masks = np.flatnonzero(popcount == size)
        inside = (masks[:, None] & bits[None, :]) != 0
        prev = np.where(inside, masks[:, None] ^ bits[None, :], 0)
        tables.append((masks, prev, inside))
    return tables


def _path_cost(cost: np.ndarray, path: Sequence[int]) -> float:
    p = np.asarray(path)
    return float(cost[p[:-1], p[1:]].sum())


def _tsp_heuristic(cost: np.ndarray) -> tuple[float, list[int]]:
    n = cost.shape[0]
    best: tuple[float, list[int]] | None = None
    for start in range(n):
        path, left = [start], set(range(n)) - {start}
        while left:
            nxt = min(left, key=lambda k: (cost[path[-1], k], k))
            path.append(nxt)
            left.remove(nxt)
        improved = True
        while improved:
            improved = False
            for i, j in itertools.combinations(range(n), 2):
                candidate = path[:i] + path[i:j + 1][::-1] + path[j + 1:]
                if _path_cost(cost, candidate) < _path_cost(cost, path) - 1e-12:
                    path, improved = candidate, True
        total = _path_cost(cost, path)
        if best is None or total < best[0]:
            best = (total, path)
    assert best is not None
    return best


# --- partition evaluation -----------------------------------------------------------------------

class _Model:
    """Cached evaluation of partitions (groups of devices) under the full cost or DT-FM's."""

    def __init__(self, network: Network, workload: Workload) -> None:
        _check(network, workload)
        self.network, self.workload = network, workload
        self.edges = _edge_costs(network, workload)
        self._dp: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._pairs: dict[bytes, tuple[float, list[int]]] = {}
        self._by_groups: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[float, list[int]]] = {}
        self._balanced: dict[bytes, np.ndarray] = {}
        self.evaluations = 0

    def _dp_terms(self, group: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        terms = self._dp.get(group)
        if terms is None:
            g = np.asarray(group)
            lat = self.network.latency[np.ix_(g, g)].sum(1)
            inv = (1.0 / self.network.bandwidth[np.ix_(g, g)]).sum(1)
            terms = self._dp[group] = (lat, inv)
        return terms

    def dp_cost(self, group: tuple[int, ...], layers: float) -> float:
        if len(group) < 2:
            return 0.0
        lat, inv = self._dp_terms(group)
        w = self.workload
        grad = layers * w.parameter_bytes / w.gradient_compression / len(group)
        return float((2.0 * (lat + grad * inv)).max()) / w.sync_every

    def pair(self, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[float, list[int]]:
        """Bottleneck matching of group a's devices to group b's (by position)."""
        flip = b < a
        key = (b, a) if flip else (a, b)
        hit = self._by_groups.get(key)
        if hit is None:
            sub = self.edges[list(key[0])][:, list(key[1])]
            raw = sub.tobytes()  # devices with the same links give the same matrix: one solve
            hit = self._pairs.get(raw)
            if hit is None:
                hit = self._pairs[raw] = bottleneck_matching(sub)
            self._by_groups[key] = hit
            if len(self._by_groups) > 200_000:
                self._by_groups.clear()
                self._pairs.clear()
        if not flip:
            return hit
        inverse = [0] * len(hit[1])
        for i, j in enumerate(hit[1]):
            inverse[j] = i
        return hit[0], inverse

    def pipeline(self, groups: list[tuple[int, ...]]) -> tuple[float, list[int]]:
        n = len(groups)
        if n == 1:
            return 0.0, [0]
        matrix = np.zeros((n, n))
        for i, j in itertools.combinations(range(n), 2):
            matrix[i, j] = matrix[j, i] = self.pair(groups[i], groups[j])[0]
        total, order = open_tsp(matrix)
        return 2.0 * total, order

    def layers_for(self, groups: list[tuple[int, ...]]) -> np.ndarray:
        speeds = np.array([self.network.flops[list(g)].min() for g in groups])
        key = speeds.tobytes()
        if key not in self._balanced:
            self._balanced[key] = balance_layers(speeds, self.workload.layers)
        return self._balanced[key].copy()

    def full(self, groups: list[tuple[int, ...]],
             layers: np.ndarray | None = None) -> tuple[Cost, list[int], np.ndarray]:
        """Cost of a partition with its best pipeline order (and balanced layers unless given)."""
        self.evaluations += 1
        if layers is None:
            layers = self.layers_for(groups)
        speeds = np.array([self.network.flops[list(g)].min() for g in groups])
        pipeline, order = self.pipeline(groups)
        dp = max(self.dp_cost(g, n) for g, n in zip(groups, layers))
        return Cost(_compute_cost(self.workload, speeds, layers), dp, pipeline), order, layers

    def dtfm(self, groups: list[tuple[int, ...]]) -> float:
        """DT-FM's objective: data-parallel plus pipeline communication with equal layers."""
        self.evaluations += 1
        share = self.workload.layers / self.workload.stages
        return max(self.dp_cost(g, share) for g in groups) + self.pipeline(groups)[0]

    def layout(self, groups: list[tuple[int, ...]], order: list[int], layers: np.ndarray) -> Schedule:
        """The schedule: groups in pipeline order, matched boundary by boundary."""
        ordered = [groups[k] for k in order]
        rows = [list(ordered[0])]
        for s in range(1, len(ordered)):
            _, match = self.pair(ordered[s - 1], ordered[s])
            prev_group = ordered[s - 1]
            position = {d: i for i, d in enumerate(prev_group)}
            rows.append([ordered[s][match[position[d]]] for d in rows[-1]])
        lay = np.asarray(layers)[order]
        cost = evaluate(self.network, self.workload, rows, lay)
        return Schedule(tuple(tuple(int(d) for d in r) for r in rows), tuple(int(x) for x in lay), cost)


def _groups_of(labels: np.ndarray, stages: int) -> list[tuple[int, ...]]:
    return [tuple(np.flatnonzero(labels == p).tolist()) for p in range(stages)]


def _labels_of(groups: list[tuple[int, ...]], n: int) -> np.ndarray:
    labels = np.empty(n, dtype=int)
    for p, group in enumerate(groups):
        labels[list(group)] = p
    return labels


# --- DT-FM's search: GCMA -----------------------------------------------------------------------

def _crossover(rng: np.random.Generator, parent1: np.ndarray, parent2: np.ndarray, replicas: int,
               stages: int) -> np.ndarray:
    """Five-point crossover of two partitions (group labels), then a deterministic rebalance."""
    child = parent2.copy()
    points = rng.permutation(len(child))[:5]
    child[points] = parent1[points]
    sizes = np.bincount(child, minlength=stages)
    for i in range(len(child)):
        if sizes[child[i]] > replicas:
            j = int(np.flatnonzero(sizes < replicas)[0])
            sizes[j] += 1
            sizes[child[i]] -= 1
            child[i] = j
    return child


def _gains(edges: np.ndarray, labels: np.ndarray, locked: np.ndarray, stages: int):
    """DT-FM's move gains: for each group's most tightly linked free device, how much farther
    (mean pipeline link cost) each other group is than its nearest peer in its own group."""
    n = len(labels)
    onehot = labels[:, None] == np.arange(stages)[None, :]
    sizes = onehot.sum(0)
    gain = np.divide(edges @ onehot, sizes, out=np.zeros((n, stages)), where=sizes > 0)
    same = onehot[:, labels] & ~np.eye(n, dtype=bool)
    gain[np.arange(n), labels] = np.where(same, edges, np.inf).min(1)
    g_ij = np.full((stages, stages), -np.inf)
    g_i = np.full(stages, -np.inf)
    trace: list[tuple[int | None, int | None]] = [(None, None)] * stages
    own = gain[np.arange(n), labels]
    for p in range(stages):
        free = np.flatnonzero((labels == p) & ~locked)
        if len(free) == 0:
            continue
        v = int(free[np.argmin(own[free])])
        with np.errstate(invalid="ignore"):
            delta = gain[v] - gain[v, p]  # −inf (no move) when v has no peer left
        delta[np.isnan(delta)] = -np.inf
        delta[p] = -np.inf
        g_ij[p] = delta
        q = int(np.argmax(delta))
        if delta[q] > -np.inf:
            g_i[p], trace[p] = delta[q], (v, q)
        else:
            trace[p] = (v, None)
    return g_ij, g_i, trace


def _cyclic_partitioning(edges: np.ndarray, labels: np.ndarray, stages: int) -> np.ndarray:
    """DT-FM's local search: up to `stages` cycles of moves, each a chain of devices moving
    group to group until it returns to its start; a cycle keeps its best-gain prefix."""
    n = len(labels)
    locked_v = np.zeros(n, dtype=bool)
    locked_p = np.zeros(stages, dtype=bool)
    offspring = [labels.copy()]
    sums = [0.0]
    for _ in range(stages):
        current = offspring[-1].copy()
        moves: list[tuple[int, int, int]] = []
        eps: list[float] = []
        tau: list[float] = []
        g_ij, g_i, trace = _gains(edges, current, locked_v, stages)
        s0 = si = int(np.argmax(g_i))
        for _ in range(n):
            v, pv = trace[si]
            if v is None or pv is None:
                if not moves:
                    break
                v, pv = moves[-1][0], s0
            current[v] = pv
            locked_v[v] = True
            locked_p[pv] = True
            moves.append((v, si, pv))
            eps.append(float(g_i[si]))
            tau.append(float(g_ij[si, s0]))
            si = pv
            if si == s0:
                break
            g_ij, g_i, trace = _gains(edges, current, locked_v, stages)
        if not moves:
            break
        best, cut = 0.0, 0
        for i in range(1, len(eps)):
            total = float(np.sum(eps[:i])) + tau[i]
            if total > best:
                best, cut = total, i
        for i in range(len(eps) - 1, cut, -1):
            current[moves[i][0]] = moves[i][1]
        current[moves[cut][0]] = s0
        offspring.append(current)
        sums.append(best)
        if locked_p.all():
            break
    best, m = 0.0, 0
    for i in range(1, len(sums)):
        if float(np.sum(sums[:i])) > best:
            best, m = float(np.sum(sums[:i])), i - 1
    return offspring[m]


def _gcma(model: _Model, fitness: Callable[[list[tuple[int, ...]]], float], rng: np.random.Generator,
          population: int, trials: int, initial: list[np.ndarray]
          ) -> tuple[np.ndarray, tuple[float, ...], list[np.ndarray]]:
    """Best partition found, best score after each trial, and the final population best first."""
    w = model.workload
    n = w.devices
    pool = [lab.copy() for lab in initial[:population]]
    while len(pool) < population:
        pool.append(np.repeat(np.arange(w.stages), w.replicas)[rng.permutation(n)])
    scores = [fitness(_groups_of(lab, w.stages)) for lab in pool]
    best = int(np.argmin(scores))
    best_labels, best_score = pool[best].copy(), scores[best]
    history = []
    for _ in range(trials):
        a, b = (int(x) for x in rng.integers(population, size=2))
        child = _crossover(rng, pool[a], pool[b], w.replicas, w.stages)
        if w.replicas > 1:
            child = _cyclic_partitioning(model.edges, child, w.stages)
        score = fitness(_groups_of(child, w.stages))
        if score <= scores[a]:  # replaces the worse parent unless worse than the first
            worse = a if scores[a] > scores[b] else b
            pool[worse], scores[worse] = child, score
        if score < best_score:
            best_labels, best_score = child.copy(), score
        history.append(best_score)
    ranked = [pool[i] for i in np.argsort(scores, kind="stable")]
    return best_labels, tuple(history), ranked


def dtfm_search(network: Network, workload: Workload, *, seed: int = 0, population: int = 100,
                trials: int = 4900) -> SearchResult:
    """DT-FM's scheduler: GCMA on DT-FM's objective (communication, equal layers).

    Returns its best partition laid out with equal layers per stage, costed by the full model."""
    start = time.perf_counter()
    model = _Model(network, workload)
    labels, history, _ = _gcma(model, model.dtfm, np.random.default_rng(seed), population, trials, [])
    groups = _groups_of(labels, workload.stages)
    layers = equal_layers(workload.layers, workload.stages)
    _, order, _ = model.full(groups, layers)
    result = model.layout(groups, order, layers)
    return SearchResult(result, time.perf_counter() - start, model.evaluations, history)


# --- our refinement: device swaps and layer moves under the full cost ---------------------------

def _equivalent_devices(network: Network) -> np.ndarray:
    """Class labels: devices with the same speed and the same links to every third device
    (swapping two of them changes no cost)."""
    n = network.size
    same = (network.latency[:, None, :] == network.latency[None, :, :]) & \
           (network.bandwidth[:, None, :] == network.bandwidth[None, :, :])
    mismatches = (~same).sum(2)
    idx = np.arange(n)
    # Columns i and j themselves (the diagonal and the i–j link) do not count.
    mismatches -= (~same[idx[:, None], idx[None, :], idx[:, None]]).astype(int)
    mismatches -= (~same[idx[:, None], idx[None, :], idx[None, :]]).astype(int)
    equal = (mismatches == 0) & (network.flops[:, None] == network.flops[None, :])
    labels = np.arange(n)
    for i in range(n):
        for j in range(i):
            if labels[j] == j and equal[i, j]:
                labels[i] = j
                break
    return labels


def _swap_descent(model: _Model, labels: np.ndarray, classes: np.ndarray,
                  max_evaluations: int) -> tuple[float, np.ndarray]:
    """First-improvement swaps of two devices of different groups until none helps."""
    stages = model.workload.stages
    labels = labels.copy()
    groups = _groups_of(labels, stages)
    best = model.full(groups)[0].total
    budget = max_evaluations
    improved = True
    while improved and budget > 0:
        improved = False
        for a, b in itertools.combinations(range(stages), 2):
            tried: set[tuple[int, int]] = set()
            for i in groups[a]:
                for j in groups[b]:
                    key = (int(classes[i]), int(classes[j]))
                    if key[0] == key[1] or key in tried or budget <= 0:
                        continue
                    tried.add(key)
                    trial = list(groups)
                    trial[a] = tuple(sorted(set(groups[a]) - {i} | {j}))
                    trial[b] = tuple(sorted(set(groups[b]) - {j} | {i}))
                    budget -= 1
                    cost = model.full(trial)[0].total
                    if cost < best - 1e-12 * max(1.0, best):
                        best, groups, improved = cost, trial, True
                        labels[i], labels[j] = b, a
                        break
                else:
                    continue
                break
    return best, labels


def _layer_moves(model: _Model, groups: list[tuple[int, ...]], layers: np.ndarray) -> tuple[float, np.ndarray]:
    """Move single layers between stages while the full cost drops (data-parallel cost grows
    with a stage's layers, so the compute-balanced split is not always best)."""
    layers = layers.copy()
    best = model.full(groups, layers)[0].total
    improved = True
    while improved:
        improved = False
        for a, b in itertools.permutations(range(len(groups)), 2):
            if layers[a] <= 1:
                continue
            layers[a] -= 1
            layers[b] += 1
            cost = model.full(groups, layers)[0].total
            if cost < best - 1e-12 * max(1.0, best):
                best, improved = cost, True
                break
            layers[a] += 1
            layers[b] -= 1
    return best, layers


def _capped_layers(model: _Model, groups: list[tuple[int, ...]]) -> np.ndarray:
    """Layers for a fixed partition trading compute against data-parallel time: for every cap
    on a stage's sync time, the compute-balanced split within that cap; the cheapest wins."""
    w = model.workload
    speeds = np.array([model.network.flops[list(g)].min() for g in groups])
    counts = np.arange(1, w.layers + 1)
    sync = np.array([[model.dp_cost(g, int(n)) for n in counts] for g in groups])  # [stage, layers − 1]
    best: tuple[float, np.ndarray] | None = None
    for cap in np.unique(sync):
        allowed = (sync <= cap).sum(1)  # sync time grows with layers: the first `allowed` counts fit
        if allowed.min() < 1 or allowed.sum() < w.layers:
            continue
        layers = np.ones(len(groups), dtype=int)
        for _ in range(w.layers - len(groups)):
            finish = np.where(layers < allowed, (layers + 1) / speeds, np.inf)
            layers[int(np.argmin(finish))] += 1
        total = _compute_cost(w, speeds, layers) + float(sync[np.arange(len(groups)), layers - 1].max())
        if best is None or total < best[0]:
            best = (total, layers)
    assert best is not None  # the largest cap allows every split
    return best[1]


def schedule(network: Network, workload: Workload, *, seed: int = 0, population: int = 100,
             trials: int = 4900, max_swaps: int = 5_000, restarts: int = 2,
             baseline: SearchResult | None = None) -> SearchResult:
    """The scheduler. Deterministic for a seed.

    1. DT-FM's search (`dtfm_search`, or `baseline` when given: its result for the same
       arguments, whose time is counted in ours);
    2. the same GCMA on the full cost, its population seeded with step 1's partition, a
       speed-sorted one (fastest devices together) and six structured ones (`_structured_seeds`);
    3. device swaps between groups from step 2's best and the next `restarts` distinct
       members of its final population;
    4. for each of those and each seed, layer moves between stages from the compute-balanced
       split, the equal one and the best compute-balanced split under a cap on the stages'
       sync time (`_capped_layers`); the cheapest wins.
    Every step keeps the best seen, so the result never costs more than step 1's."""
    if baseline is None:
        baseline = dtfm_search(network, workload, seed=seed, population=population, trials=trials)
    start = time.perf_counter()
    model = _Model(network, workload)
    stages = workload.stages
    from_dtfm = _labels_of(list(baseline.schedule.stages), network.size)
    by_speed = _chunks(np.argsort(-network.flops, kind="stable"), workload)
    seeds = [from_dtfm, by_speed, *_structured_seeds(model)]

    def full(groups: list[tuple[int, ...]]) -> float:
        return model.full(groups)[0].total

    evolved, history, ranked = _gcma(model, full, np.random.default_rng([seed, 1]), population, trials, seeds)
    classes = _equivalent_devices(network)
    candidates: list[list[tuple[int, ...]]] = []
    for labels in [evolved, *ranked]:
        if len(candidates) > restarts:
            break
        if _groups_of(labels, stages) not in candidates:
            candidates.append(_groups_of(labels, stages))
    candidates = [_groups_of(_swap_descent(model, _labels_of(g, network.size), classes, max_swaps)[1], stages)
                  for g in candidates]
    candidates += [_groups_of(labels, stages) for labels in seeds]
    best: tuple[float, list[tuple[int, ...]], np.ndarray] | None = None
    for groups in candidates:
        for start_layers in (model.layers_for(groups), equal_layers(workload.layers, stages),
                             _capped_layers(model, groups)):
            total, layers = _layer_moves(model, groups, start_layers)
            if best is None or total < best[0]:
                best = (total, groups, layers)
    assert best is not None
    _, groups, layers = best
    _, order, _ = model.full(groups, layers)
    ours = model.layout(groups, order, layers)
    if ours.cost.total > baseline.schedule.cost.total:
        ours = baseline.schedule  # unreachable but for float rounding: step 1's layout is among the candidates
    seconds = baseline.seconds + time.perf_counter() - start
    return SearchResult(ours, seconds, baseline.evaluations + model.evaluations, history)


def _chunks(order: np.ndarray, workload: Workload) -> np.ndarray:
    """Labels putting devices order[0 : R] in group 0, the next R in group 1, and so on."""
    labels = np.empty(len(order), dtype=int)
    labels[order] = np.repeat(np.arange(workload.stages), workload.replicas)
    return labels


def _stripes(order: np.ndarray, workload: Workload) -> np.ndarray:
    """Labels making order[0 : S] one pipeline (stage 0, 1, …), the next S the next pipeline."""
    labels = np.empty(len(order), dtype=int)
    labels[order] = np.tile(np.arange(workload.stages), workload.replicas)
    return labels


def _structured_seeds(model: _Model) -> list[np.ndarray]:
    """Partitions that keep either each data-parallel group or each pipeline among nearby
    devices: chunks and stripes of the devices' rank order and of a nearest-neighbour tour
    (by pipeline link cost) through them, and the stripes again with each pipeline's
    devices sorted by speed."""
    edges, n = model.edges, model.network.size
    tour, left = [0], set(range(1, n))
    while left:
        nxt = min(left, key=lambda k: (edges[tour[-1], k], k))
        tour.append(nxt)
        left.remove(nxt)
    seeds = []
    w = model.workload
    for order in (np.arange(n), np.array(tour)):
        seeds += [_chunks(order, w), _stripes(order, w)]
        # The same pipelines, each running its devices fastest first, so that a stage's
        # group gathers devices of one speed (its slowest device sets its pace).
        pipelines = order.reshape(w.replicas, w.stages)
        by_speed = np.argsort(-model.network.flops[pipelines], 1, kind="stable")
        fastest_first = np.take_along_axis(pipelines, by_speed, 1)
        seeds.append(_stripes(fastest_first.ravel(), w))
    return seeds


# --- reference points ---------------------------------------------------------------------------

def in_order_schedule(network: Network, workload: Workload) -> Schedule:
    """Devices in rank order: device k runs stage k mod D_PP of replica k div D_PP; equal layers."""
    _check(network, workload)
    grid = np.arange(network.size).reshape(workload.replicas, workload.stages).T
    layers = equal_layers(workload.layers, workload.stages)
    return Schedule(tuple(tuple(int(d) for d in row) for row in grid), tuple(int(x) for x in layers),
                    evaluate(network, workload, grid, layers))


def random_schedule(network: Network, workload: Workload, rng: np.random.Generator) -> Schedule:
    """A random placement of devices on the stage × replica grid; equal layers."""
    _check(network, workload)
    grid = rng.permutation(network.size).reshape(workload.stages, workload.replicas)
    layers = equal_layers(workload.layers, workload.stages)
    return Schedule(tuple(tuple(int(d) for d in row) for row in grid), tuple(int(x) for x in layers),
                    evaluate(network, workload, grid, layers))


def _partitions(items: list[int], size: int):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for others in itertools.combinations(rest, size - 1):
        group = (first, *others)
        remaining = [x for x in rest if x not in others]
        for tail in _partitions(remaining, size):
            yield [group, *tail]


def brute_force(network: Network, workload: Workload) -> Schedule:
    """The best schedule over every balanced partition (compute-balanced layers); small N only."""
    if network.size > 10:
        raise SchedulerError("brute force is for at most 10 devices")
    model = _Model(network, workload)
    best: tuple[float, list[tuple[int, ...]], list[int], np.ndarray] | None = None
    for groups in _partitions(list(range(network.size)), workload.replicas):
        cost, order, layers = model.full(groups)
        if best is None or cost.total < best[0]:
            best = (cost.total, groups, order, layers)
    assert best is not None
    return model.layout(best[1], best[2], best[3])
