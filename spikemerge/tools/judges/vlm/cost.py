"""Token usage per call and an estimated cost from the providers' published per-token prices.

Prices are US dollars per million tokens (input, output), standard tier, as published by
OpenAI, Anthropic and Google in 2025. They are an estimate for ``run.json``, not a bill: check
the provider's page when it matters. A model missing from the table has ``cost_usd = None``.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o4-mini": (1.10, 4.40),
    # Anthropic
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    # Google
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.0-flash": (0.10, 0.40),
}
LOCAL_PROVIDERS = {"ollama"}
"""Providers that run on the user's machine: cost 0."""


def price_of(model: str) -> tuple[float, float] | None:
    """Per-million-token prices for a model id (``provider:name`` or bare), by longest name prefix."""
    provider, sep, name = model.partition(":")
    if not sep:
        provider, name = "", model
    if provider in LOCAL_PROVIDERS:
        return (0.0, 0.0)
    name = name.lower()
    matches = [key for key in PRICES_PER_MTOK if name.startswith(key)]
    return PRICES_PER_MTOK[max(matches, key=len)] if matches else None


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """Estimated US dollars for one call, or ``None`` when the model's price is unknown."""
    price = price_of(model)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6


@dataclass
class CallRecord:
    """One model call: which group and stage, tokens, seconds, attempt, estimated cost."""

    group_id: int
    stage: str
    attempt: int
    input_tokens: int
    output_tokens: int
    seconds: float
    cost_usd: float | None
    ok: bool = True


def usage_tokens(message: Any) -> tuple[int, int]:
    """Input and output tokens from an ``AIMessage.usage_metadata`` (0 when the provider gave none)."""
    meta = getattr(message, "usage_metadata", None) or {}
    return int(meta.get("input_tokens", 0) or 0), int(meta.get("output_tokens", 0) or 0)


def summarise(records: list[CallRecord]) -> dict[str, Any]:
    """Totals over call records: calls, tokens in/out, estimated cost (None if any price is unknown)."""
    costs = [r.cost_usd for r in records]
    known = all(c is not None for c in costs)
    return {
        "calls": len(records),
        "input_tokens": sum(r.input_tokens for r in records),
        "output_tokens": sum(r.output_tokens for r in records),
        "cost_usd": round(sum(c for c in costs if c is not None), 6) if known else None,
    }


class UsageLog:
    """Thread-safe list of call records for one judge, across runs."""

    def __init__(self) -> None:
        self._records: list[CallRecord] = []
        self._lock = threading.Lock()

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self, group_id: int | None = None) -> list[CallRecord]:
        with self._lock:
            return [r for r in self._records if group_id is None or r.group_id == group_id]

    def summary(self, model: str) -> dict[str, Any]:
        records = self.records()
        price = price_of(model)
        out = summarise(records)
        out.update(
            model=model,
            price_per_mtok=None if price is None else {"input": price[0], "output": price[1]},
            records=[asdict(r) for r in records],
        )
        return out
