"""judge_group: the Judge protocol every judge follows, and the offline metrics judge.

A judge takes candidate groups (unit ids, figure paths, evidence numbers) and returns one
``Verdict`` per group. The session owns the journal and the cache; a judge only decides.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

from .verdict import Example, JudgeRequest, Verdict

VerdictCallback = Callable[[Verdict], None]


@runtime_checkable
class Judge(Protocol):
    """What the session needs from a judge.

    ``fingerprint`` must change whenever the same request could get a different answer
    (another model, other prompts, other settings); the session uses it in the cache key.
    ``judge_many`` calls ``on_verdict`` as each verdict arrives, so the session can journal it
    at once, and returns the verdicts in request order.
    """

    name: str
    model: str | None

    def fingerprint(self) -> str: ...

    def judge_many(
        self,
        requests: Sequence[JudgeRequest],
        examples: Sequence[Example] = (),
        policy: str = "balanced",
        on_verdict: VerdictCallback | None = None,
    ) -> list[Verdict]: ...
