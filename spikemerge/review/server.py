"""Start the review GUI in its own process and hand back a handle: for Python sessions and the chat.

The GUI's server loop (web) or Qt event loop (desktop) blocks the process that runs it, so a
notebook, a script or the chat runs ``spikemerge review OUT`` as a child process and keeps going.
"""

from __future__ import annotations

import atexit
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpikemergeError
from .gui import ADDRESS, Mode, free_port
from .params import DEFAULT_PARAMS, ReviewParams
from .proposals import REVIEW_FOLDER

LOG_FILE = "server.log"


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers HTTP 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ReviewServer:
    """A running review GUI: its page (web mode), its process and its log."""

    url: str | None
    process: subprocess.Popen
    log: Path
    params: ReviewParams = field(default=DEFAULT_PARAMS, repr=False)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """Stop the GUI as Ctrl-C would (terminate it if it does not exit in time); returns its exit code."""
        if self.running:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(self.params.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(self.params.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        return int(self.process.returncode)

    def __enter__(self) -> "ReviewServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def start_review(
    out: str | Path,
    port: int = 0,
    mode: Mode = "web",
    open_browser: bool = False,
    analyzer: str | Path | None = None,
    wait: bool = True,
    params: ReviewParams = DEFAULT_PARAMS,
) -> ReviewServer:
    """Run ``spikemerge review OUT`` in a child process; in web mode wait until its page answers.

    Parameters
    ----------
    out, port, mode, open_browser, analyzer
        As for ``spikemerge review`` (see :func:`spikemerge.review.gui.serve`).
    wait : bool
        Web mode: return only once ``http://127.0.0.1:PORT/`` answers HTTP 200 (raising a
        one-line error with the end of the server's log if it exits or does not answer within
        ``params.startup_timeout_s``).

    Returns
    -------
    ReviewServer
        Call ``stop()`` (or use it as a context manager) to end the review.
    """
    out = Path(out)
    folder = out / REVIEW_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    port = int(port) or (free_port() if mode == "web" else 0)
    command = [sys.executable, "-m", "spikemerge", "review", str(out.resolve()), "--mode", mode]
    if mode == "web":
        command += ["--port", str(port)]
    if not open_browser:
        command.append("--no-browser")
    if analyzer is not None:
        command += ["--analyzer", str(Path(analyzer).resolve())]
    log = folder / LOG_FILE
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://{ADDRESS}:{port}/" if mode == "web" else None
    server = ReviewServer(url=url, process=process, log=log, params=params)
    atexit.register(server.stop)  # a GUI started from a notebook or the chat ends with it
    if mode != "web" or not wait:
        return server
    deadline = time.monotonic() + params.startup_timeout_s
    while time.monotonic() < deadline:
        if not server.running:
            raise SpikemergeError(f"the review GUI stopped (exit {process.returncode}): {_tail(log)}; full log in {log}")
        if answers(url):
            return server
        time.sleep(params.poll_interval_s)
    server.stop()
    raise SpikemergeError(f"the review GUI did not answer on {url} within {params.startup_timeout_s:.0f} s: see {log}")
