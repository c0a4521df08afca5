"""When run starts the figures: before evidence only when they are drawn in worker processes."""

from spikemerge.curate import _draws_in_processes
from spikemerge.tools.render.groups import PARALLEL_MIN_GROUPS


def test_figures_start_before_evidence_only_in_worker_processes():
    assert _draws_in_processes("auto", PARALLEL_MIN_GROUPS)
    assert not _draws_in_processes("auto", PARALLEL_MIN_GROUPS - 1)  # drawn in this process: after evidence
    assert not _draws_in_processes(1, 10 * PARALLEL_MIN_GROUPS)  # a busy machine: one process
