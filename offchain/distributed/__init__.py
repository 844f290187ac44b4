"""Tasks bigger than one machine: scheduling pipeline stages × data-parallel replicas over a
heterogeneous network (`scheduler`, `network`: docs/distributed.md), training over them
(`engine`, `compression`: docs/distributed-training.md), and each participant's published parts
and their replay (`parts`, `replay`: docs/group-tasks.md)."""

from offchain.distributed.network import SCENARIOS, Network, SchedulerError, load_network, parse_network, save_network
from offchain.distributed.scheduler import (
    Cost, Schedule, SearchResult, Workload, brute_force, dtfm_search, evaluate, in_order_schedule, random_schedule,
    schedule,
)

__all__ = [
    "SCENARIOS", "Cost", "Network", "Schedule", "SchedulerError", "SearchResult", "Workload", "brute_force",
    "dtfm_search", "evaluate", "in_order_schedule", "load_network", "parse_network", "random_schedule",
    "save_network", "schedule",
]
