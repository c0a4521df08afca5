"""The LangGraph curation agent: a planner driving the five tools, with checkpoints and guards."""

from .context import Context, SessionRegistry
from .graph import build_graph, load_planner_prompt
from .guards import Limits
from .models import load_chat_model
from .state import CurationState
from .tools import TOOL_NAMES, make_tools, run_tool

__all__ = [
    "Context", "CurationState", "Limits", "SessionRegistry", "TOOL_NAMES",
    "build_graph", "load_chat_model", "load_planner_prompt", "make_tools", "run_tool",
]
