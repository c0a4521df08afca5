"""Model calls that never fail silently: one slot pool, a rate limiter, bounded retries.

Every call of every group takes a slot from one ``PrioritySemaphore`` (``max_concurrency``
slots); there are no batches, so a slow group never holds the others back. Head decisions get
slots before new report calls, so groups finish (and are journalled) steadily instead of all at
the end. Faults are sorted three ways:

- retryable (429, 408, 5xx, timeouts, connection errors, malformed structured output): retried
  with exponential backoff and jitter (a wait drawn between half and all of the doubling
  ceiling, or the provider's ``Retry-After``), at most ``max_retries`` times, the slot
  released while waiting;
- fatal (401/403 authentication, 404 model not found, a 429 that says the account is out of
  quota): every further call would fail the same way, so the whole run stops with a
  ``FatalCallError``;
- rejected (400/413/422: this request is too large, its context too long, its image refused):
  the fault belongs to the group, which fails (``decision="error"``) while the run goes on;
  a circuit breaker stops the run when ``RetryPolicy.max_rejected_in_a_row`` requests in a
  row are rejected (then the fault is the run's settings, not one group's data);
- anything else: the group fails with its cause (``decision="error"``), the run goes on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal, TypeVar

from langchain_core.rate_limiters import InMemoryRateLimiter

from ....errors import SpikemergeError
from .cost import CallRecord, UsageLog, estimate_cost, usage_tokens
from .model import scrub

T = TypeVar("T")
Fault = Literal["retry", "fatal", "reject", "fail"]

_RETRY_NAMES = (
    "RateLimit", "Timeout", "APIConnectionError", "ConnectionError", "ServiceUnavailable",
    "InternalServerError", "ResourceExhausted", "DeadlineExceeded", "Overloaded", "ServerError",
)
_AUTH_NAMES = ("AuthenticationError", "PermissionDenied", "Unauthenticated", "Unauthorized")
_NOT_FOUND_NAMES = ("NotFound",)
_REJECT_NAMES = ("BadRequest", "InvalidArgument", "UnprocessableEntity", "RequestTooLarge", "ContextWindow")
_NO_QUOTA = "insufficient_quota"
"""OpenAI's code for a 429 that no wait cures (no credit left on the account)."""


class MalformedOutput(Exception):
    """The model answered, but not in the shape asked for (unparsable or inconsistent)."""


class FatalCallError(SpikemergeError):
    """Authentication, unknown model, no quota, or rejections in a row: further calls would fail too."""


class CallFailed(Exception):
    """A call that failed for good (retries exhausted or an unretryable fault)."""


def status_of(exc: BaseException) -> int | None:
    """The HTTP status carried by a provider exception, if any."""
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "code"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and 100 <= value < 600:
                return value
    return None


def classify(exc: BaseException) -> Fault:
    """Sort a call's exception: retry, fatal (stop the run), reject or fail (this group only)."""
    if isinstance(exc, (MalformedOutput, TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return "retry"
    names = " ".join(cls.__name__ for cls in type(exc).__mro__)
    if type(exc).__name__ in ("OutputParserException", "ValidationError") or "OutputParser" in names:
        return "retry"
    status = status_of(exc)
    if status in (401, 403) or any(n in names for n in _AUTH_NAMES):
        return "fatal"
    if status == 404 or any(n in names for n in _NOT_FOUND_NAMES):
        return "fatal"
    if _out_of_quota(exc):
        return "fatal"
    if status in (400, 413, 422) or any(n in names for n in _REJECT_NAMES):
        return "reject"
    if status in (408, 409, 429) or (status is not None and status >= 500):
        return "retry"
    if any(n in names for n in _RETRY_NAMES):
        return "retry"
    return "fail"


def _out_of_quota(exc: BaseException) -> bool:
    return getattr(exc, "code", None) == _NO_QUOTA or _NO_QUOTA in str(exc)


def describe(exc: BaseException) -> str:
    """One scrubbed line naming the fault: ``RateLimitError (HTTP 429): ...``."""
    status = status_of(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    head = type(exc).__name__ + (f" (HTTP {status})" if status else "")
    return scrub(f"{head}: {text[:200]}" if text else head)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After`` header), if it said."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class PrioritySemaphore:
    """An asyncio semaphore whose waiters are served lowest priority value first (FIFO on ties)."""

    def __init__(self, value: int) -> None:
        if value < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._free = value
        self._waiters: list[tuple[tuple[int, int], int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: tuple[int, int]) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # hand the slot over directly
                return
        self._free += 1


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with jitter: attempt ``n`` waits between half and all of
    ``min(max_delay, base_delay * 2**n)``, longer if the provider asked (``Retry-After``)."""

    max_retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_rejected_in_a_row: int = 5
    """Rejected requests (400/413/422) in a row, over all groups, that stop the run."""

    def delay(self, attempt: int, exc: BaseException) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        wait = random.uniform(ceiling / 2, ceiling)
        asked = retry_after(exc)
        return min(self.max_delay, max(wait, asked)) if asked else wait


class CallRunner:
    """Runs model calls for one ``judge_many``: slots, rate limit, retries, usage records.

    Parameters
    ----------
    max_concurrency
        Calls in flight at once, over all groups.
    rate_limiter
        Optional token bucket shared by every call.
    retry
        Backoff settings.
    timeout
        Seconds before one call counts as timed out (retryable); ``None``: no limit.
    model_id
        For cost estimates.
    usage
        Where call records go (the judge's log over all its runs); this run's records are also
        kept in ``run_usage``, so a group's usage counts only the calls of this run.
    fatal_hint
        Added to the message of an authentication failure (e.g. which env var to check).
    """

    def __init__(
        self,
        *,
        max_concurrency: int,
        rate_limiter: InMemoryRateLimiter | None,
        retry: RetryPolicy,
        timeout: float | None,
        model_id: str,
        usage: UsageLog,
        fatal_hint: str = "",
    ) -> None:
        self.slots = PrioritySemaphore(max_concurrency)
        self.rate_limiter = rate_limiter
        self.retry = retry
        self.timeout = timeout
        self.model_id = model_id
        self.usage = usage
        self.run_usage = UsageLog()
        self.fatal_hint = fatal_hint
        self.stopped: str | None = None
        """The message of the fatal fault that stopped this run, if one did."""
        self.rejected_in_a_row = 0
        """Requests rejected (400/413/422) since the last call that got an answer."""

    async def call(
        self,
        invoke: Callable[[], Awaitable[Any]],
        parse: Callable[[Any], T],
        *,
        group_id: int,
        stage: str,
        priority: tuple[int, int],
        slot_held: bool = False,
        keep_slot: Callable[[], bool] | None = None,
    ) -> T:
        """Call ``invoke`` until ``parse`` accepts its result, retrying retryable faults.

        ``parse`` turns the raw result into the value wanted, raising ``MalformedOutput`` when
        the answer is unusable. Raises ``CallFailed`` (group fails) or ``FatalCallError``.

        A slot can pass straight from one call to the next of the same group: when
        ``keep_slot()`` is true after a success, the slot is kept, and the next call, made with
        ``slot_held=True``, uses it for its first attempt (a group's last report hands its slot
        to the group's head decision, which no other call can then take in between).
        """
        last, last_exc = "", None
        for attempt in range(self.retry.max_retries + 1):
            if not (slot_held and attempt == 0):
                await self.slots.acquire(priority)
            keep = False
            try:
                if self.stopped is not None:  # another call hit a fatal fault: start no more
                    raise FatalCallError(self.stopped)
                if self.rate_limiter is not None:
                    await self.rate_limiter.aacquire()
                started = time.perf_counter()
                result = await asyncio.wait_for(invoke(), self.timeout) if self.timeout else await invoke()
                try:
                    value = parse(result)
                except MalformedOutput:
                    self._record(group_id, stage, attempt, result, started, ok=False)  # paid for
                    raise
                self._record(group_id, stage, attempt, result, started, ok=True)
                self.rejected_in_a_row = 0
                keep = keep_slot is not None and keep_slot()
                return value
            except (asyncio.CancelledError, FatalCallError):
                raise
            except Exception as exc:  # noqa: BLE001 - every provider has its own exception tree
                fault = classify(exc)
                last, last_exc = describe(exc), exc
                if fault == "fatal":
                    self.stopped = self._fatal_message(exc)
                    raise FatalCallError(self.stopped) from None
                if fault == "reject":
                    self.rejected_in_a_row += 1
                    if self.rejected_in_a_row >= self.retry.max_rejected_in_a_row:
                        self.stopped = scrub(
                            f"{self.model_id} rejected {self.rejected_in_a_row} requests in a row, stopping the run "
                            f"(last: {last}); check the model's image and context limits or the judge settings"
                        )
                        raise FatalCallError(self.stopped) from None
                    raise CallFailed(f"{stage}: the request was rejected ({last})") from None
                if fault == "fail":
                    raise CallFailed(f"{stage}: {last}") from None
            finally:
                if not keep:
                    self.slots.release()
            if attempt < self.retry.max_retries:
                await asyncio.sleep(self.retry.delay(attempt, last_exc))
        raise CallFailed(f"{stage}: gave up after {self.retry.max_retries + 1} attempts; last error {last}")

    def _record(self, group_id: int, stage: str, attempt: int, result: Any, started: float, ok: bool) -> None:
        raw = result.get("raw") if isinstance(result, dict) else result
        tokens_in, tokens_out = usage_tokens(raw)
        record = CallRecord(
            group_id=group_id,
            stage=stage,
            attempt=attempt,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            seconds=round(time.perf_counter() - started, 4),
            cost_usd=estimate_cost(self.model_id, tokens_in, tokens_out),
            ok=ok,
        )
        self.usage.add(record)
        self.run_usage.add(record)

    def _fatal_message(self, exc: BaseException) -> str:
        status = status_of(exc)
        names = " ".join(cls.__name__ for cls in type(exc).__mro__)
        if status in (401, 403) or any(n in names for n in _AUTH_NAMES):
            hint = f": {self.fatal_hint}" if self.fatal_hint else ""
            return scrub(f"{self.model_id} refused the API key ({describe(exc)}){hint}")
        if _out_of_quota(exc):
            return scrub(f"{self.model_id}: the account is out of quota, stopping the run; check its plan and billing ({describe(exc)})")
        return scrub(f"{self.model_id} rejected the request, stopping the run ({describe(exc)})")
