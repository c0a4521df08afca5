"""Worker processes: the memory settings every pool's initializer applies."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import numpy as np
from spikemerge.tools.workers import prepare_worker

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

info = ctypes.CDLL(None).mallinfo2
info.restype = MallInfo2
if sys.argv[1] == "prepared":
    prepare_worker()
before = info().hblkhd
block = np.ones(4 * 2**20 // 8)  # a 4 MB temporary, as evidence makes thousands of
print(info().hblkhd - before)
"""


def _glibc_with_mallinfo2() -> bool:
    try:
        ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return False
    return True


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc's mallinfo2")
def test_a_prepared_worker_takes_temporaries_from_the_heap_not_fresh_memory_maps():
    def mapped(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    assert mapped("default") >= 4 * 2**20  # glibc's default: a map of its own, faulted in page by page
    assert mapped("prepared") == 0


def test_a_drawing_worker_runs_below_the_stages_that_decide():
    """Figure drawing in the background yields the CPUs to candidates and evidence (lower priority)."""
    probe = ("import os; from spikemerge.tools.workers import DRAWING_NICE, prepare_drawing_worker; "
             "before = os.nice(0); prepare_drawing_worker(); print(before, os.nice(0), DRAWING_NICE)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    before, after, wanted = map(int, result.stdout.split())
    assert wanted > 0 and after == min(before + wanted, 19)  # 19: the lowest priority there is
