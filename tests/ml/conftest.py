from __future__ import annotations

import pytest

from offchain.ml import digits_task, make_task, mlp_spec, synthetic_dataset, tiny_task, train


@pytest.fixture(scope="session")
def tiny():
    """The tiny task: the 8-8-3 MLP preset's program."""
    return tiny_task()


@pytest.fixture(scope="session")
def compiled_tiny():
    """The tiny task's MLP as a compiled graph, for the compiled graph's and task format's own tests."""
    return make_task(mlp_spec(8, (8,), 3), synthetic_dataset(64, 8, 3, seed=11), steps=40, k=4, batch_size=8,
                     lr=0.2, seed=7)


@pytest.fixture(scope="session")
def tiny_result(tiny):
    return train(tiny.task, tiny.spec, tiny.weights, tiny.dataset, graph=tiny.graph)


@pytest.fixture(scope="session")
def digits():
    return digits_task(steps=60, k=10)
