"""Dispute-game off-chain helpers."""

from __future__ import annotations

from .judge import (
    MAX_CLASSES,
    MAX_REDUCTION,
    JudgeCall,
    JudgeError,
    check,
    check_add,
    check_add_bias,
    check_call,
    check_matmul,
    check_relu,
    check_relu_grad,
    check_sgd,
    check_softmax_xent,
    check_softmax_xent_grad,
    check_sum_rows,
    find_inconsistent_element,
    judge_inputs,
)

__all__ = [
    "MAX_CLASSES", "MAX_REDUCTION", "JudgeCall", "JudgeError", "check", "check_add", "check_add_bias",
    "check_call", "check_matmul", "check_relu", "check_relu_grad", "check_sgd", "check_softmax_xent",
    "check_softmax_xent_grad", "check_sum_rows", "find_inconsistent_element", "judge_inputs",
]
