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

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("spikemerge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "CurationSession": "spikemerge.tools.session",
    "MetricsJudge": "spikemerge.tools.judges",
    "Judge": "spikemerge.tools.judges",
    "VLMJudge": "spikemerge.tools.judges.vlm.judge",
    "make_judge": "spikemerge.tools.judges",
    "Verdict": "spikemerge.tools.judges",
    "Example": "spikemerge.tools.judges",
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
    from .tools.judges import Example, Judge, MetricsJudge, Verdict, make_judge
    from .tools.session import CurationSession
    from .tools.judges.vlm.judge import VLMJudge


def __getattr__(name: str) -> Any:
    """Import on first use, so `import spikemerge` stays fast (SpikeInterface and LangChain are heavy)."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spikemerge' has no attribute {name!r}")
