"""Small helpers shared by tests."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path


def folder_digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``folder``."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def load_script(name: str):
    """A module of ``scripts/`` (not a package), loaded from its file for its pure functions."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def kept_group(name: str, group: int):
    """A candidate group of a kept sorter-made record (read as ``scripts/explain_sorted.py`` reads it), as
    the judge's request, and its truth (unit -> neuron, None for an impure unit)."""
    from spikemerge.tools.judges.base import JudgeRequest

    script = load_script("explain_sorted")
    record = script.read_kept(script.KEPT / f"{name}{script.KEPT_SUFFIX}")
    units, _ = record["groups"][group]
    return (JudgeRequest(group_id=group, unit_ids=tuple(units), evidence=record["evidence"][group]),
            record["truth"]["unit_to_neuron"])


@contextmanager
def local_http_server(handler):
    """A threaded HTTP server on a free local port, for fake provider endpoints; yields it, then stops it.

    The server carries ``requests`` (for the handler to append to, under ``lock``) and ``url``,
    the OpenAI-style base URL (``http://127.0.0.1:PORT/v1``).
    """
    import threading
    from http.server import ThreadingHTTPServer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests, httpd.lock = [], threading.Lock()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def send_body(handler, status: int, data: bytes, content_type: str = "application/json") -> None:
    """Answer a ``BaseHTTPRequestHandler`` request with ``data`` (status, type and length headers)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
