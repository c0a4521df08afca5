"""spikemerge: decide which spike-sorted units are the same neuron, and merge them.

```python
import spikemerge as sm
session = sm.CurationSession.open("path/to/analyzer", out="curation_out")
session.find_candidates(min_similarity=0.8)
session.render_group()
session.judge_group(judge=sm.MetricsJudge())
session.apply_merges(confirm=True)
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "CurationSession": "spikemerge.tools.session",
    "MetricsJudge": "spikemerge.tools.judge",
    "Judge": "spikemerge.tools.judge",
    "VLMJudge": "spikemerge.tools.vlm_judge",
    "Verdict": "spikemerge.tools.verdict",
    "Example": "spikemerge.tools.verdict",
    "SpikemergeError": "spikemerge.errors",
    "POLICIES": "spikemerge.policies",
    "build_graph": "spikemerge.agent",
    "SessionRegistry": "spikemerge.agent",
    "make_tools": "spikemerge.agent",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from .agent import SessionRegistry, build_graph, make_tools
    from .errors import SpikemergeError
    from .policies import POLICIES
    from .tools.judge import Judge, MetricsJudge
    from .tools.session import CurationSession
    from .tools.verdict import Example, Verdict
    from .tools.vlm_judge import VLMJudge


def __getattr__(name: str) -> Any:
    """Import on first use, so `import spikemerge` stays fast (SpikeInterface and LangChain are heavy)."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spikemerge' has no attribute {name!r}")
