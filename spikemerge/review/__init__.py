"""review: hand spikemerge's proposals to spikeinterface-gui, and learn from what the curator changes.

- :func:`gui.serve` (``spikemerge review OUT``) opens spikeinterface-gui on the analyzer ``OUT``
  was made from, read-only, with the proposed merges preloaded and each unit's verdict in the
  unit table; "Save curation" writes ``OUT/review/saved_curation.json``.
- :func:`server.start_review` runs the same in a child process (``session.review()``, the chat).
- :func:`collect.collect` (``spikemerge review OUT --collect [FILE]``) compares the curator's
  curation with the proposals, writes ``OUT/review.json`` and the final ``OUT/curation.json``, and
  saves each rejected proposal as a bad example and each added merge as a good one.
"""

from __future__ import annotations

from .collect import ReviewOutcome, collect, default_saved_file, example_name
from .params import DEFAULT_PARAMS, ReviewParams
from .proposals import Comparison, Proposal, Proposed, compare, load_proposals
from .record import ReviewRecord, load_review

__all__ = [
    "Comparison", "DEFAULT_PARAMS", "Proposal", "Proposed", "ReviewOutcome", "ReviewParams", "ReviewRecord",
    "collect", "compare", "default_saved_file", "example_name", "load_proposals", "load_review",
]
