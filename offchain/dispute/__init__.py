"""Dispute-game off-chain helpers."""

from __future__ import annotations

from .judge import MAX_CLASSES, MAX_REDUCTION, JudgeCall, JudgeError, check, check_add, check_call, check_relu

__all__ = ["MAX_CLASSES", "MAX_REDUCTION", "JudgeCall", "JudgeError", "check", "check_add", "check_call", "check_relu"]
