"""What the terminal shows while a command works: a progress bar over judging, and logging.

Both write to stderr, so ``spikemerge run --json`` keeps stdout for the one JSON summary.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Sequence

from .tools.judges.base import Example, JudgeRequest, Verdict, VerdictCallback
from .tools.secrets import ScrubFilter

LOGGER_NAME = "spikemerge"
LOG_FORMAT = "spikemerge: %(levelname)s: %(name)s: %(message)s"
LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)
"""Log level by the number of ``-v`` given (0, 1, 2 or more)."""


def setup_logging(verbosity: int = 0, stream: Any = None) -> logging.Handler:
    """Route the ``spikemerge`` loggers to stderr, every record scrubbed of API keys.

    The filter sits on the handler, not the logger: a logger's filters see only records made
    on that very logger, while a handler's see every record that propagates to it (all of
    ``spikemerge.*``). Calling it again replaces the earlier handler (tests call ``main`` often).

    Parameters
    ----------
    verbosity : int
        0 warnings, 1 info (``-v``), 2 debug (``-vv``).
    stream : file-like, optional
        Defaults to the current ``sys.stderr``.

    Returns
    -------
    logging.Handler
        The handler installed.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for old in [h for h in logger.handlers if getattr(h, "_spikemerge", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._spikemerge = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(ScrubFilter())
    logger.addHandler(handler)
    logger.setLevel(LEVELS[min(max(verbosity, 0), len(LEVELS) - 1)])
    logger.propagate = False
    return handler


def _money(cost: float | None, known: bool) -> str:
    if not known:
        return "cost unknown"
    return f"${cost:.4f}"


class ProgressJudge:
    """A judge that also draws a rich progress bar: groups done / total, ETA, and cost for a model.

    Everything else (name, model, fingerprint, usage, prompt hash) is the wrapped judge's, so the
    verdict cache and the provenance are exactly as without the bar.
    """

    def __init__(self, inner: Any, console: Any, enabled: bool = True) -> None:
        self._inner, self._console, self._enabled = inner, console, enabled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def judge_many(
        self,
        requests: Sequence[JudgeRequest],
        examples: Sequence[Example] = (),
        policy: str = "balanced",
        on_verdict: VerdictCallback | None = None,
    ) -> list[Verdict]:
        if not self._enabled or not requests:
            return self._inner.judge_many(requests, examples=examples, policy=policy, on_verdict=on_verdict)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        paid = getattr(self._inner, "name", "metrics") != "metrics"
        columns = [TextColumn("judging"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn()]
        if paid:
            columns.append(TextColumn("{task.fields[cost]}"))
        totals = {"cost": 0.0, "known": True, "tokens": 0}
        with Progress(*columns, console=self._console, transient=False) as progress:
            task = progress.add_task("judge", total=len(requests), cost=_money(0.0, True))

            def tick(verdict: Verdict) -> None:
                if on_verdict is not None:
                    on_verdict(verdict)
                usage = verdict.usage or {}
                if usage.get("cost_usd") is None and usage.get("calls"):
                    totals["known"] = False
                totals["cost"] += float(usage.get("cost_usd") or 0.0)
                totals["tokens"] += int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
                text = f"{_money(totals['cost'], totals['known'])}, {totals['tokens']:,} tokens"
                progress.update(task, advance=1, cost=text)

            return self._inner.judge_many(requests, examples=examples, policy=policy, on_verdict=tick)
