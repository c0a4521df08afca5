"""judge_group's judges: one protocol (``base``), the offline metrics judge, and the vision-language judge (``vlm``).

``make_judge(spec)`` is the one place a judge is built from a command-line or chat string, so the CLI,
the chat and the bench mean the same thing by ``--judge``.
"""

from __future__ import annotations

from typing import Any

from .base import Example, Judge, JudgeRequest, UnitId, Verdict, VerdictCallback
from .metrics import MetricsJudge

__all__ = ["Example", "Judge", "JudgeRequest", "MetricsJudge", "UnitId", "Verdict", "VerdictCallback", "make_judge"]


def make_judge(spec: str | None = None, **vlm_kwargs: Any) -> Judge:
    """A judge from its name: ``"metrics"`` (or None/empty) for the offline judge, else a chat model id.

    Parameters
    ----------
    spec : str or None
        ``"metrics"`` or any ``init_chat_model`` string (``"openai:gpt-4o"``, ``"ollama:llava"``, ...).
    **vlm_kwargs
        Passed to :class:`~spikemerge.tools.judges.vlm.judge.VLMJudge` (``base_url``, ``mode``, ...).

    Returns
    -------
    Judge
    """
    if spec is None or not str(spec).strip() or str(spec).strip().lower() == "metrics":
        return MetricsJudge()
    from .vlm.judge import VLMJudge  # LangChain is imported only when a vision model is asked for

    return VLMJudge(str(spec).strip(), **vlm_kwargs)
