"""A person's view: drive the chat in tmux with slash commands and no API key, read the screen."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_resume import tiny_analyzer_folder  # noqa: F401  (the fixture)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tmux_chat_check.sh"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.slow
def test_chat_in_tmux(tiny_analyzer_folder, tmp_path):  # noqa: F811
    done = subprocess.run(["bash", str(SCRIPT), str(tiny_analyzer_folder), str(tmp_path), sys.executable],
                          capture_output=True, text=True, timeout=240)
    screen = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no API key for openai:gpt-4o-mini" in screen and "slash commands work" in screen
    assert "candidate groups" in screen and "verdicts" in screen and "decisions" in screen
    assert "Apply these merges?" in screen and "nothing changed" in screen
    assert "CHAT-EXITED" in screen and "Traceback" not in screen
    assert not (tmp_path / "out" / "curation.json").exists()
