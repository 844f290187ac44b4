from __future__ import annotations

import pytest

from offchain.ml import digits_task, tiny_task, train


@pytest.fixture(scope="session")
def tiny():
    """The tiny task: the 8-8-3 MLP preset's program."""
    return tiny_task()


@pytest.fixture(scope="session")
def tiny_result(tiny):
    return train(tiny.task, tiny.spec, tiny.weights, tiny.dataset, graph=tiny.graph)


@pytest.fixture(scope="session")
def digits():
    return digits_task(steps=60, k=10)
