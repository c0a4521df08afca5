"""The VLM judge: a vision-language model decides each candidate group from its figures.

Two-stage mode (default): one report per figure (the figure plus what to look for in it, from
``prompts/vlm_report_*.md``), then a head decision with structured output over the reports, an
overview image and the numbers. Single mode: one call per group with every figure and the
numbers. Few-shot examples are shown to the deciding call. Calls share one slot pool, retry
only retryable faults and never turn a failure into "not merge" (see ``vlm_calls``).

Images are prepared ahead of the calls that send them: each group's figures are read, fitted
and encoded in a small thread pool (``vlm_images.prepare_group``) as the group enters a window
of twice ``max_concurrency`` groups (in order), so a call takes its slot with its messages
ready and the event loop keeps dispatching while the next groups are being prepared.

>>> judge = VLMJudge("openai:gpt-4o", max_concurrency=8)          # doctest: +SKIP
>>> verdicts = judge.judge_many(requests, policy="conservative")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import threading
from functools import partial
from typing import Any, Awaitable, Callable, Coroutine, Literal, Sequence, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.rate_limiters import InMemoryRateLimiter

from ....errors import SpikemergeError
from ....policies import Policy, get_policy
from ...secrets import is_secret_name as _is_secret
from ...secrets import register_model_secrets
from ..base import Example, JudgeRequest, Verdict, VerdictCallback
from .calls import CallFailed, CallRunner, FatalCallError, RetryPolicy, describe
from .cost import UsageLog, summarise
from .images import IMAGE_FORMAT, GroupImages, group_figures, prepare_group
from .messages import (
    HeadDecision,
    head_messages,
    overview_paths,
    parse_decision,
    prompt_hash,
    report_messages,
    report_text,
    single_messages,
)
from .model import (
    PROVIDER_KEYS,
    ModelSpec,
    check_images_supported,
    init_model,
    load_env,
    model_name_of,
    parse_model_id,
    require_key,
    scrub,
)

Mode = Literal["two_stage", "single"]
T = TypeVar("T")
_HEAD, _REPORT = 0, 1  # slot priorities: finishing a group beats starting new reports
class VLMJudge:
    """Judge candidate groups with a vision-language chat model.

    Parameters
    ----------
    model
        ``"provider:name"`` for ``init_chat_model`` (``openai:gpt-4o``, ``anthropic:...``,
        ``google_genai:...``, ``ollama:...``) or any ``BaseChatModel`` instance.
    mode
        ``"two_stage"`` (a report per figure, then a head decision) or ``"single"``.
    features
        Figures to show, in order (default: every figure of the request except ``composite``).
    max_concurrency
        Model calls in flight at once, over all groups.
    requests_per_second
        Optional rate limit shared by every call.
    max_retries
        Retries per call for retryable faults (429, timeouts, 5xx, malformed output).
    base_url
        An OpenAI-compatible endpoint (a local vLLM); the model name is then served there.
    image_long_side
        Cap on a figure's long side in pixels before it is fitted to whole 512-px tiles.
    retry_base_delay
        First backoff ceiling in seconds (doubles per retry, capped at 30 s, jittered).
    call_timeout
        Seconds before a call counts as timed out (retryable); ``None`` disables it.
    max_rejected_in_a_row
        Requests rejected in a row (HTTP 400/413/422: image too large, context too long) that
        stop the run; fewer fail only their own groups (``decision="error"``).
    image_workers
        Threads that read, fit and encode figures ahead of the calls (default: the CPUs this
        process may use, at most 8). Does not change what is sent.
    **model_kwargs
        Passed to ``init_chat_model`` (``temperature``, ``timeout``, ...).

    Raises
    ------
    SpikemergeError
        The provider's key is missing, the model does not take images, or it cannot be loaded.
    """

    name = "vlm"

    def __init__(
        self,
        model: str | BaseChatModel = "openai:gpt-4o",
        *,
        mode: Mode = "two_stage",
        features: Sequence[str] | None = None,
        max_concurrency: int = 8,
        requests_per_second: float | None = None,
        max_retries: int = 4,
        base_url: str | None = None,
        image_long_side: int = 768,
        retry_base_delay: float = 1.0,
        call_timeout: float | None = 180.0,
        image_workers: int | None = None,
        max_rejected_in_a_row: int = 5,
        **model_kwargs: Any,
    ) -> None:
        if mode not in ("two_stage", "single"):
            raise SpikemergeError(f"unknown VLM judge mode {mode!r}: use 'two_stage' or 'single'")
        if max_concurrency < 1:
            raise SpikemergeError("max_concurrency must be at least 1")
        if image_workers is not None and image_workers < 1:
            raise SpikemergeError("image_workers must be at least 1")
        self.mode: Mode = mode
        self.features = tuple(features) if features is not None else None
        self.max_concurrency = max_concurrency
        self.requests_per_second = requests_per_second
        self.max_retries = max_retries
        self.image_long_side = image_long_side
        self.retry_base_delay = retry_base_delay
        self.call_timeout = call_timeout
        self.image_workers = image_workers or _usable_cpus()
        if max_rejected_in_a_row < 1:
            raise SpikemergeError("max_rejected_in_a_row must be at least 1")
        self.max_rejected_in_a_row = max_rejected_in_a_row
        register_model_secrets(None, model_kwargs)  # before the model exists: its errors are scrubbed too
        self._settings = {k: repr(v) for k, v in sorted(model_kwargs.items()) if not _is_secret(k)}
        self._base_url = base_url
        self._spec: ModelSpec | None = None
        if isinstance(model, BaseChatModel):
            self._chat = model
            self.model = model_name_of(model)
        else:
            load_env()
            self._spec = parse_model_id(model, base_url)
            require_key(self._spec, base_url, model_kwargs)
            self._chat = init_model(self._spec, base_url=base_url, model_kwargs=model_kwargs)
            self.model = self._spec.id
        register_model_secrets(self._chat)
        check_images_supported(self._chat, self.model)
        self._structured = self._chat.with_structured_output(HeadDecision, include_raw=True)
        self._rate_limiter = (
            InMemoryRateLimiter(requests_per_second=requests_per_second, check_every_n_seconds=0.05)
            if requests_per_second
            else None
        )
        self._usage = UsageLog()

    # -- provenance ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"VLMJudge(model={self.model!r}, mode={self.mode!r}, max_concurrency={self.max_concurrency})"

    def prompt_hash(self) -> str:
        """sha256 of every VLM prompt file, for provenance."""
        return prompt_hash()

    def fingerprint(self) -> str:
        """Changes whenever the same request could get another answer (model, prompts, settings)."""
        payload = {
            "judge": self.name,
            "model": self.model,
            "model_class": type(self._chat).__name__,
            "base_url": self._base_url,
            "mode": self.mode,
            "features": self.features,
            "image_long_side": self.image_long_side,
            "image_format": IMAGE_FORMAT,
            "prompts": self.prompt_hash(),
            "settings": self._settings,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def usage_summary(self) -> dict[str, Any]:
        """Calls, tokens in/out, estimated cost (USD, ``None`` if the price is unknown), per-call records."""
        return self._usage.summary(self.model)

    # -- judging ------------------------------------------------------------------------------

    def judge_many(
        self,
        requests: Sequence[JudgeRequest],
        examples: Sequence[Example] = (),
        policy: str = "balanced",
        on_verdict: VerdictCallback | None = None,
    ) -> list[Verdict]:
        """Judge every group; call ``on_verdict`` as each verdict arrives; return them in order.

        Runs its own event loop (in a worker thread when called from inside a running loop).
        A group whose calls fail for good, or whose request is rejected (400/413/422), gets
        ``decision="error"``. Authentication, unknown-model and out-of-quota errors, or
        ``max_rejected_in_a_row`` rejections in a row, stop the run with ``SpikemergeError``; on Ctrl-C pending calls are
        cancelled, and verdicts already delivered stay delivered.
        """
        rule = get_policy(policy)
        coro_args = (list(requests), list(examples), rule, on_verdict)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._judge_all(*coro_args))
        return _run_in_own_thread(lambda: self._judge_all(*coro_args))

    async def ajudge_many(
        self,
        requests: Sequence[JudgeRequest],
        examples: Sequence[Example] = (),
        policy: str = "balanced",
        on_verdict: VerdictCallback | None = None,
    ) -> list[Verdict]:
        """The async form of ``judge_many``, for callers that already run an event loop."""
        return await self._judge_all(list(requests), list(examples), get_policy(policy), on_verdict)

    async def _judge_all(
        self,
        requests: list[JudgeRequest],
        examples: list[Example],
        policy: Policy,
        on_verdict: VerdictCallback | None,
    ) -> list[Verdict]:
        runner = CallRunner(
            max_concurrency=self.max_concurrency,
            rate_limiter=self._rate_limiter,
            retry=RetryPolicy(
                max_retries=self.max_retries, base_delay=self.retry_base_delay,
                max_rejected_in_a_row=self.max_rejected_in_a_row,
            ),
            timeout=self.call_timeout,
            model_id=self.model,
            usage=self._usage,
            fatal_hint=self._key_hint(),
        )
        results: list[Verdict | None] = [None] * len(requests)
        pool = concurrent.futures.ThreadPoolExecutor(self.image_workers, thread_name_prefix="vlm-images")
        # groups being prepared or judged; they enter in order, so images are ready in call order
        window = asyncio.Semaphore(2 * max(self.max_concurrency, self.image_workers))
        # prepared[i]: groups 0..i have their images (or cannot be judged)
        prepared = [asyncio.Event() for _ in requests]

        async def one(index: int) -> tuple[int, Verdict]:
            async def in_order() -> None:
                if index:
                    await prepared[index - 1].wait()
                prepared[index].set()

            async with window:
                try:
                    verdict = await self._judge_group(index, requests[index], examples, policy, runner, pool, in_order)
                finally:
                    prepared[index].set()  # also when stopped: never leave a later group waiting
                return index, verdict

        tasks = [asyncio.create_task(one(i)) for i in range(len(requests))]
        try:
            for next_done in asyncio.as_completed(tasks):
                index, verdict = await next_done
                results[index] = verdict
                if on_verdict is not None:
                    on_verdict(verdict)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return [v for v in results if v is not None]

    async def _judge_group(
        self,
        index: int,
        request: JudgeRequest,
        examples: list[Example],
        policy: Policy,
        runner: CallRunner,
        pool: concurrent.futures.Executor,
        in_order: Callable[[], Awaitable[None]],
    ) -> Verdict:
        def failed(cause: str) -> Verdict:
            verdict = Verdict.failed(request, scrub(cause), self.name, self.model, policy.name)
            verdict.usage = summarise(runner.run_usage.records(request.group_id))
            return verdict

        images = await self._prepare(request, examples, pool)
        await in_order()  # the groups before this one are prepared too: calls start in group order
        if isinstance(images, str):
            return failed(images)
        try:
            if self.mode == "two_stage":
                reports = await self._reports(index, request, images, runner)  # returns holding a slot
                messages = head_messages(request, reports, examples, images, policy)
                stage = "head"
            else:
                reports = {}
                messages = single_messages(request, examples, images, policy)
                stage = "single"
            decision, confidence, merge_groups, reasoning = await runner.call(
                partial(self._structured.ainvoke, messages),
                lambda result: parse_decision(result, request.unit_ids),
                group_id=request.group_id,
                stage=stage,
                priority=(_HEAD, index),
                slot_held=self.mode == "two_stage",
            )
        except CallFailed as exc:
            return failed(f"the model call failed: {exc}")
        return Verdict(
            group_id=request.group_id,
            unit_ids=list(request.unit_ids),
            decision=decision,  # type: ignore[arg-type]
            confidence=confidence,
            merge_groups=merge_groups,
            reasoning=scrub(reasoning),
            judge=self.name,
            model=self.model,
            policy=policy.name,
            reports={k: scrub(v) for k, v in reports.items()},
            usage=summarise(runner.run_usage.records(request.group_id)),
        )

    async def _prepare(
        self, request: JudgeRequest, examples: list[Example], pool: concurrent.futures.Executor
    ) -> GroupImages | str:
        """The group's encoded images (read and encoded in ``pool``), or why it cannot be judged."""
        clash = next((ex for ex in examples if ex.is_group(request)), None)
        if clash is not None:
            return f"group {request.group_id} is the few-shot example {clash.name!r}; an example is never judged"
        figures = group_figures(request.images, self.features)
        if not figures and "composite" in request.images:
            figures = group_figures(request.images, ["composite"])
        if not figures:
            return f"group {request.group_id} has no figures to show the model; render it first"
        prepare = partial(
            prepare_group,
            figures,
            overview_paths(request.images, self.features) if self.mode == "two_stage" else (),
            [overview_paths(ex.images, self.features) for ex in examples],
            self.image_long_side,
        )
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, prepare)
        except OSError as exc:
            return f"cannot read a figure: {describe(exc)}"
        except Exception as exc:  # noqa: BLE001 - a figure PIL cannot decode is this group's fault
            return f"cannot prepare the figures: {describe(exc)}"

    async def _reports(
        self, index: int, request: JudgeRequest, images: GroupImages, runner: CallRunner
    ) -> dict[str, str]:
        """One report per figure; the last report to succeed keeps its slot for the head."""
        succeeded = [0]

        def last() -> bool:
            succeeded[0] += 1
            return succeeded[0] == len(images.figures)

        async def report(feature: str) -> str:
            messages = report_messages(feature, images.figures[feature], request.unit_ids)
            return await runner.call(
                partial(self._chat.ainvoke, messages),
                report_text,
                group_id=request.group_id,
                stage=f"report:{feature}",
                priority=(_REPORT, index),
                keep_slot=last,
            )

        tasks = [asyncio.create_task(report(f)) for f in images.figures]
        try:
            texts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return dict(zip(images.figures, texts))

    def _key_hint(self) -> str:
        if self._spec is None:
            return "check the API key the model instance was built with"
        names = PROVIDER_KEYS.get(self._spec.provider, ())
        return f"check {' or '.join(names)}" if names else "check the endpoint's credentials"


def _run_in_own_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a new loop in a worker thread; Ctrl-C here cancels it there.

    For callers inside a running loop (a notebook): the interrupt reaches this thread, which
    cancels the judging task (pending calls are dropped, delivered verdicts stay) and waits
    for it to wind down instead of letting the run go on paying for calls.
    """
    lock = threading.Lock()
    state: dict[str, Any] = {}

    async def main() -> T:
        with lock:
            if state.get("stop"):
                raise asyncio.CancelledError
            state["loop"], state["task"] = asyncio.get_running_loop(), asyncio.current_task()
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vlm-judge") as pool:
        future = pool.submit(asyncio.run, main())
        try:
            return future.result()
        except BaseException:
            with lock:
                state["stop"] = True
                loop, task = state.get("loop"), state.get("task")
            if loop is not None and not future.done():
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # the loop closed meanwhile
                    pass
            raise


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS tells), at most 8."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return max(1, min(8, count))


__all__ = ["VLMJudge", "FatalCallError"]
