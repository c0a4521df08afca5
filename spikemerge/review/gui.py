"""Open spikeinterface-gui on the analyzer an output folder was made from, with the proposals preloaded.

The user's analyzer is never written to. spikeinterface-gui 0.14 would save its curation inside
the analyzer folder it is given (``spikeinterface_gui/curation_data.json``) and may compute
missing extensions into it; here it gets instead:

- the analyzer opened with ``read_only=True`` (SpikeInterface then keeps every computed extension
  in memory) and extensions loaded lazily from the folder, so nothing is copied;
- a curation callback: the GUI's "Save curation" button writes ``OUT/review/saved_curation.json``
  (atomically), which ``spikemerge review OUT --collect`` reads;
- ``OUT/review`` as working folder, so the web GUI's "Download JSON" button, which writes
  ``curation.json`` in the server's working folder before sending it, writes there too.

The proposals reach the GUI twice: as the curation's merges (the curator removes the ones they
reject and adds others), and as columns of the unit table (``spikemerge``: the group, the judge's decision and confidence;
``spikemerge_reasoning``: why). A GUI version without extra unit columns gets the merges
alone.
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import SpikemergeError, one_line
from ..tools.outputs import write_json_atomic
from .params import DEFAULT_PARAMS, ReviewParams
from .proposals import PROPOSALS_FILE, REVIEW_FOLDER, SAVED_FILE, Proposed, load_proposals, read_curated

Mode = Literal["web", "desktop"]
ADDRESS = "127.0.0.1"
"""The web GUI listens on the loopback interface only; reach it from another machine through an SSH tunnel."""


def _require_gui(mode: Mode) -> None:
    try:
        import spikeinterface_gui  # noqa: F401
        if mode == "web":
            import panel  # noqa: F401
        else:
            import pyqtgraph  # noqa: F401
    except ImportError as exc:
        extra = "review" if mode == "web" else "review-desktop"
        raise SpikemergeError(
            f"the {mode} review needs {exc.name}: pip install 'spikemerge[{extra}]'"
        ) from None


def gui_curation(proposed: Proposed, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """The curation dict spikeinterface-gui starts from.

    The proposed merges, nothing removed or labelled; or, when the curator already saved a
    curation in this folder (``saved``), that one, so a second session resumes the first.
    spikeinterface-gui 0.14 needs every key present (it indexes ``manual_labels`` and
    ``label_definitions`` without checking).
    """
    from spikeinterface_gui.curation_tools import default_label_definitions

    base = {
        "format_version": "2",
        "unit_ids": list(proposed.unit_ids),
        "merges": [{"unit_ids": list(p.unit_ids)} for p in proposed.merges],
        "removed": [],
        "splits": [],
        "manual_labels": [],
        "label_definitions": dict(default_label_definitions),
    }
    if saved is None:
        return base
    resumed = {**base, **{k: v for k, v in saved.items() if v is not None}}
    resumed["merges"] = [{"unit_ids": list(m["unit_ids"])} for m in saved.get("merges") or []]
    resumed["label_definitions"] = {k: {kk: vv for kk, vv in d.items() if kk != "name"}
                                    for k, d in (resumed["label_definitions"] or {}).items()} or base["label_definitions"]
    return resumed


def unit_columns(proposed: Proposed, unit_ids: Any, params: ReviewParams = DEFAULT_PARAMS) -> dict[str, np.ndarray]:
    """Two columns for the GUI's unit table: the judge's verdict on each unit's group, and its reasoning.

    ``spikemerge`` reads ``g3 merge 2+8 (0.97)`` for a unit in a proposed merge, ``g4 not merge
    (0.81)`` for a unit of a group the judge kept apart, and is empty for units in no candidate
    group. Short on purpose: the unit table shares half the screen with the curation view.
    """
    group_of: dict[str, Any] = {}
    for group in proposed.groups:
        for unit in group.unit_ids:
            group_of.setdefault(str(unit), group)
    merge_of = {str(u): p for p in proposed.merges for u in p.unit_ids}
    verdicts, reasons = [], []
    for unit in unit_ids:
        group = group_of.get(str(unit))
        proposal = merge_of.get(str(unit))
        name = f"g{group.group_id} " if group else (f"g{proposal.group_id} " if proposal and proposal.group_id is not None else "")
        confidence = f" ({group.confidence:.2f})" if group and group.confidence is not None else ""
        if proposal is not None:
            verdicts.append(f"{name}merge {'+'.join(map(str, proposal.unit_ids))}{confidence}")
        elif group is not None:
            verdicts.append(f"{name}{group.decision}{confidence}")
        else:
            verdicts.append("")
        text = " ".join((group.reasoning if group else "").split())
        reasons.append(text if len(text) <= params.reasoning_chars else text[: params.reasoning_chars - 1] + "…")
    return {"spikemerge": np.asarray(verdicts, dtype=str), "spikemerge_reasoning": np.asarray(reasons, dtype=str)}


def open_read_only(path: str | Path):
    """The analyzer folder, opened so that nothing can be written into it."""
    from spikeinterface.core import load_sorting_analyzer

    path = Path(path)
    if not path.exists():
        raise SpikemergeError(f"the analyzer {path} does not exist (moved?): pass its new place with --analyzer PATH")
    try:
        return load_sorting_analyzer(path, load_extensions=False, read_only=True)
    except Exception as exc:  # SpikeInterface raises many types for a folder that is not an analyzer
        raise SpikemergeError(f"cannot open the analyzer {path}: {one_line(exc)}") from None


def check_port(port: int) -> None:
    """Fail at once, before the long start-up, when ``port`` is taken on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((ADDRESS, int(port)))
        except OSError:
            raise SpikemergeError(f"port {port} on {ADDRESS} is in use: choose another with --port, or 0 for a free one") from None


def check_display() -> None:
    """The desktop GUI needs a display; over SSH the web mode is the one that works."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise SpikemergeError("no display for the desktop GUI (DISPLAY is not set): use --mode web")


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ADDRESS, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ReviewSetup:
    """What a review shows, and where its files go."""

    proposed: Proposed
    analyzer_path: Path
    folder: Path
    """``OUT/review``: the proposals snapshot, the saved curation, downloads."""

    @property
    def saved_file(self) -> Path:
        return self.folder / SAVED_FILE


def prepare(out: str | Path, analyzer: str | Path | None = None) -> ReviewSetup:
    """Read the proposals of ``out`` and keep a snapshot of them in ``OUT/review/proposals.json``."""
    out = Path(out).expanduser().resolve()  # absolute: serve() changes the working folder
    if not out.is_dir():
        raise SpikemergeError(f"{out} is not a spikemerge output folder: give the --out folder of `spikemerge run`")
    proposed = load_proposals(out)
    folder = out / REVIEW_FOLDER
    write_json_atomic(folder / PROPOSALS_FILE, proposed.to_dict())
    return ReviewSetup(proposed=proposed, analyzer_path=Path(analyzer or proposed.analyzer).expanduser().resolve(),
                       folder=folder)


def _save_callback(curation_data: dict, path: str) -> None:
    """spikeinterface-gui's curation callback: the curator's curation, written atomically into ``OUT/review``."""
    write_json_atomic(Path(path), curation_data)
    print(f"spikemerge: curation saved to {path}; collect it with `spikemerge review OUT --collect`", flush=True)


def serve(
    out: str | Path,
    port: int = 0,
    mode: Mode = "web",
    open_browser: bool = True,
    analyzer: str | Path | None = None,
    params: ReviewParams = DEFAULT_PARAMS,
) -> None:
    """Run spikeinterface-gui on the proposals of ``out`` until it is closed (web: until Ctrl-C).

    Parameters
    ----------
    out : path
        An output folder of ``spikemerge run`` (it has ``curation.json``).
    port : int
        Web mode: the port on 127.0.0.1; 0 picks a free one.
    mode : "web" or "desktop"
        A Panel web app (default: works over an SSH tunnel) or the Qt desktop app.
    open_browser : bool
        Web mode: open the page in the default browser.
    analyzer : path, optional
        The analyzer folder, when it is no longer where ``curation.json`` says.
    """
    if mode not in ("web", "desktop"):
        raise SpikemergeError(f"mode must be 'web' or 'desktop', not {mode!r}")
    _require_gui(mode)
    if mode == "web" and port:
        check_port(port)
    elif mode == "desktop":
        check_display()
    setup = prepare(out, analyzer)
    recording_analyzer = open_read_only(setup.analyzer_path)
    if recording_analyzer.get_extension("random_spikes") is None:
        raise SpikemergeError(f"the analyzer {setup.analyzer_path} has no random_spikes extension, which spikeinterface-gui needs: compute it")
    from spikeinterface_gui import run_mainwindow

    saved = None
    if setup.saved_file.exists():
        saved = read_curated(setup.saved_file, setup.proposed.unit_ids)
        print(f"spikemerge: resuming from the curation saved in {setup.saved_file}", flush=True)
    kwargs: dict[str, Any] = dict(
        mode=mode, curation=True, curation_dict=gui_curation(setup.proposed, saved),
        with_traces=recording_analyzer.has_recording(),
        curation_callback=_save_callback, curation_callback_kwargs={"path": str(setup.saved_file)},
    )
    if "extra_unit_properties" in inspect.signature(run_mainwindow).parameters:
        kwargs["extra_unit_properties"] = unit_columns(setup.proposed, recording_analyzer.unit_ids, params)
        kwargs["displayed_unit_properties"] = list(params.gui_unit_columns)  # the GUI appends ours after these
    else:
        print("spikemerge: this spikeinterface-gui shows no extra unit columns; the verdicts are in report.html")
    if mode == "web":
        from .shortcuts import install

        install()
        port = int(port) or free_port()
        kwargs.update(address=ADDRESS, port=port, panel_start_server_kwargs={
            "show": open_browser, "verbose": False,
            "websocket_origin": [f"{ADDRESS}:{port}", f"localhost:{port}"],
        })
        print(f"spikemerge: review of {len(setup.proposed.merges)} proposed merge(s) at http://{ADDRESS}:{port}/ "
              f"(Ctrl-C to stop); 'Save curation' writes {setup.saved_file}", flush=True)
    setup.folder.mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    os.chdir(setup.folder)  # the web GUI's "Download JSON" writes curation.json in the working folder
    try:
        run_mainwindow(recording_analyzer, **kwargs)
    finally:
        os.chdir(previous)
