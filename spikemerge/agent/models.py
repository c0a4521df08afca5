"""Resolve the planner model from a ``"provider:name"`` string, in one place.

The same provider table, key check and secret scrubbing as the VLM judge
(:mod:`spikemerge.tools.judges.vlm.model`); the planner needs tool calling, not images.
"""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel

from ..errors import SpikemergeError
from ..tools.secrets import register_model_secrets
from ..tools.judges.vlm.model import init_model, load_env, parse_model_id, require_key

DEFAULT_PLANNER_MODEL = "openai:gpt-4o-mini"
"""Planner used when ``--model`` is not given and ``SPIKEMERGE_MODEL`` is unset."""


def default_model() -> str:
    """``SPIKEMERGE_MODEL`` from the environment (or ``.env``), else :data:`DEFAULT_PLANNER_MODEL`."""
    load_env()
    return os.environ.get("SPIKEMERGE_MODEL", "").strip() or DEFAULT_PLANNER_MODEL


def missing_key(model: str) -> str | None:
    """The one-line reason ``model`` cannot be used here (no API key), or None when it can."""
    load_env()
    try:
        require_key(parse_model_id(model), None, {})
    except SpikemergeError as exc:
        return str(exc)
    return None


def load_chat_model(model: str | BaseChatModel, **kwargs) -> BaseChatModel:
    """A chat model from ``"provider:name"`` (``init_chat_model``), or the instance given.

    Raises
    ------
    SpikemergeError
        Unknown provider, missing integration package, or missing API key (one line, no key shown).
    """
    if isinstance(model, BaseChatModel):
        register_model_secrets(model)
        return model
    load_env()
    spec = parse_model_id(model, kwargs.get("base_url"))
    require_key(spec, kwargs.get("base_url"), kwargs)
    register_model_secrets(None, kwargs)
    chat = init_model(spec, base_url=kwargs.pop("base_url", None), model_kwargs=kwargs)
    register_model_secrets(chat)
    return chat
