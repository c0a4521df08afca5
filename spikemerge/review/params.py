"""The review's tunable numbers, in one table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReviewParams:
    """Settings of the hand-off to spikeinterface-gui and of the collection.

    Attributes
    ----------
    startup_timeout_s : float
        How long ``start_review`` waits for the web GUI to answer HTTP 200. Importing the GUI
        compiles numba functions (its colour palette) and builds every view before the server
        answers: 40-45 s were measured on a loaded 2-core machine, hence the margin.
    poll_interval_s : float
        Pause between two HTTP probes while the server starts.
    stop_timeout_s : float
        How long a stopped server gets to exit after Ctrl-C before it is terminated.
    reasoning_chars : int
        The judge's reasoning is cut to this many characters in the GUI's unit table, whose
        cells are one line; the full text stays in ``decisions.csv`` and ``report.html``.
    example_name_chars : int
        Longest example name (the example library allows 64).
    gui_unit_columns : tuple of str
        The GUI's own unit-table columns shown before spikemerge's (group, verdict, reasoning);
        fewer than the GUI's default so that the verdicts fit on screen. The others stay
        one click away in the unit list's settings.
    """

    startup_timeout_s: float = 180.0
    poll_interval_s: float = 0.5
    stop_timeout_s: float = 15.0
    reasoning_chars: int = 160
    example_name_chars: int = 64
    gui_unit_columns: tuple[str, ...] = ("num_spikes", "snr", "rp_violations")


DEFAULT_PARAMS = ReviewParams()
