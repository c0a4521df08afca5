"""Worker processes shared by evidence and render: how many to start, and where they are forked from.

How many: on a shared machine, extra processes only help when CPUs are idle. Measured here
(2 CPUs, another session busy): evidence for 684 pairs took 19 s in one process and 27-32 s in
two workers, which shared the one CPU the busy machine left this session and each ran slower
beside the other; on an idle machine two workers took about 0.7x one process. So ``spikemerge
run`` reads the load once, before its own workers add to it, and asks for workers (``"auto"``:
one per usable CPU) only when CPUs are idle.
"""

from __future__ import annotations

import os

PRELOAD = ["spikemerge.tools.evidence.pairs", "spikemerge.tools.render.draw"]
"""What the worker server imports once before forking workers (scipy, matplotlib); one server
serves both pools, whichever starts it first, so both ask for the same list."""


MALLOC_MMAP_THRESHOLD = 32 * 2**20
"""Bytes from which glibc gives an allocation its own memory map (the most it accepts). The
default is 128 kB, raised only as large blocks are freed; a fresh worker maps, faults in and
unmaps every temporary of a few MB (500 spikes x 720 features in float64 is 2.9 MB). Measured on
the lab-scale benchmark's evidence in two workers: 7.1 s of system time, against 0.8 s with
these two settings (wall 10.3 s against 7.3 s; one process: 12.1 s, 0.3 s of it system)."""

MALLOC_TRIM_THRESHOLD = 128 * 2**20
"""Free bytes at the top of the heap that glibc keeps instead of returning them at once: a
worker's memory stays within its largest working set plus this."""


def prepare_worker() -> None:
    """Initializer of every worker process: keep the blocks numpy allocates and frees in the heap.

    Does nothing where the C library has no ``mallopt`` (macOS, Windows).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)
    mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD)


DRAWING_NICE = 10
"""Niceness added to the processes that draw figures in the background: the stages that decide
(candidates, evidence, judge) are what the curator waits for, and on a machine with as many busy
processes as CPUs the drawing slowed them by as much as it took."""


def prepare_drawing_worker() -> None:
    """Initializer of a figure-drawing worker: as ``prepare_worker``, at a lower priority."""
    try:
        os.nice(DRAWING_NICE)
    except (AttributeError, OSError):  # no nice (Windows), or not permitted
        pass
    prepare_worker()


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def idle_cpus() -> int:
    """Usable CPUs that the 1-minute load average leaves idle, counting this process's own one as free; at least 1."""
    cpus = usable_cpus()
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)  # this process is one of the runnable ones
    except (AttributeError, OSError):  # no load average (Windows)
        return cpus
    return max(1, min(cpus, int(round(cpus - others))))


def worker_context():
    """Fork workers from a server that has already imported the heavy modules, where possible.

    The server imports ``PRELOAD`` once (``import spikemerge.tools.render.draw`` alone takes
    0.8 s) and each worker is forked from it, instead of importing them again as a spawned
    worker does. The server is a clean single-threaded process, so forking from it is as safe as
    spawn in a process that runs BLAS or event-loop threads.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_worker_server() -> None:
    """Start the worker server now, without waiting for it.

    Its imports (about a second) then run on another CPU while this process goes on (finding
    candidates), instead of when the first job is sent. A server that is never used costs that
    second of another CPU, nothing else; it ends with this process.
    """
    if worker_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
