"""``/review`` in the chat: open the review GUI, collect what the curator saved, or stop the GUI."""

from __future__ import annotations

from typing import Any, Sequence

USAGE = "/review [port] opens the GUI; /review collect [FILE] learns from the saved curation; /review stop"


def review_command(session: Any, args: Sequence[str]) -> str:
    """Run ``/review ...`` on a ``CurationSession``; returns the text to show (and to remember).

    ``/review [port]`` starts the web GUI without opening a browser (the chat may run over SSH)
    and prints its address; ``/review collect [FILE]`` is ``session.collect_review(FILE)``;
    ``/review stop`` ends the GUI.
    """
    words = list(args)
    if words and words[0] == "collect":
        outcome = session.collect_review(words[1] if len(words) > 1 else None)
        return outcome.summary()
    if words and words[0] == "stop":
        server = getattr(session, "review_server", None)
        if server is None or not server.running:
            return "no review GUI is running"
        server.stop()
        return "review GUI stopped"
    if len(words) > 1 or (words and not words[0].isdigit()):
        return f"usage: {USAGE}"
    server = session.review(port=int(words[0]) if words else 0, open_browser=False)
    return (f"review GUI at {server.url} (log: {server.log}); remove the merges you reject, add yours, press "
            f"'Save curation', then /review collect")
