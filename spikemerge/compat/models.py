"""``get_model``: the short model names of the earlier VLM merge tool, resolved to chat models.

Users of that tool type names such as ``"gpt-4o"`` or ``"claude_3_5_sonnet"``. Each known name
maps to an ``init_chat_model`` id (``provider:model``). Providers retire models; a name whose
model is no longer served maps to the provider's recommended successor, and ``get_model``
says so with a ``UserWarning`` (pass ``"provider:model"`` to choose the model yourself).
The table was checked against the providers' model and deprecation pages in November 2026.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

from ..errors import SpikemergeError
from ..tools.judges.vlm.model import (
    ModelSpec,
    check_images_supported,
    init_model,
    load_env,
    parse_model_id,
    require_key,
)


@dataclass(frozen=True)
class ModelAlias:
    """One legacy model name: the model it runs on and, when the original is retired, why."""

    target: str
    """``provider:model`` passed to ``init_chat_model``."""
    retired: str = ""
    """The original model id and its retirement, when ``target`` is a successor."""


MODEL_ALIASES: dict[str, ModelAlias] = {
    # OpenAI: GPT-4o / 4.1 are still served (shutdown announced for 2027-01-14)
    "gpt-4o": ModelAlias("openai:gpt-4o"),
    "gpt-4o-mini": ModelAlias("openai:gpt-4o-mini"),
    "gpt-4.1": ModelAlias("openai:gpt-4.1"),
    "gpt-4.1-mini": ModelAlias("openai:gpt-4.1-mini"),
    "gpt-4-turbo": ModelAlias("openai:gpt-4.1", "gpt-4-turbo was shut down by OpenAI on 2026-10-23"),
    "o1": ModelAlias("openai:gpt-4.1", "o1 was shut down by OpenAI on 2026-10-23"),
    # Anthropic
    "claude_4_sonnet": ModelAlias(
        "anthropic:claude-sonnet-4-6", "claude-sonnet-4-20250514 was retired by Anthropic on 2026-06-15"
    ),
    "claude_4_opus": ModelAlias(
        "anthropic:claude-opus-4-6", "claude-opus-4-20250514 was retired by Anthropic on 2026-06-15"
    ),
    "claude_3_7_sonnet": ModelAlias(
        "anthropic:claude-sonnet-4-6", "claude-3-7-sonnet-20250219 was retired by Anthropic on 2026-02-19"
    ),
    "claude_3_5_sonnet": ModelAlias(
        "anthropic:claude-sonnet-4-6", "claude-3-5-sonnet-20241022 was retired by Anthropic on 2025-10-22"
    ),
    "claude_3_opus": ModelAlias(
        "anthropic:claude-opus-4-6", "claude-3-opus-20240229 was retired by Anthropic on 2026-01-05"
    ),
    "claude_3_sonnet": ModelAlias(
        "anthropic:claude-sonnet-4-6", "claude-3-sonnet-20240229 was retired by Anthropic on 2025-07-21"
    ),
    "claude_3_haiku": ModelAlias(
        "anthropic:claude-haiku-4-5", "claude-3-haiku-20240307 is Anthropic's oldest Haiku, on its way out"
    ),
    # Google
    "gemini-2.5-pro": ModelAlias("google_genai:gemini-2.5-pro"),
    "gemini-2.5-flash": ModelAlias("google_genai:gemini-2.5-flash"),
    "gemini-2.0-flash-exp": ModelAlias(
        "google_genai:gemini-2.5-flash", "gemini-2.0-flash-exp was shut down by Google"
    ),
    "gemini-1.5-flash": ModelAlias(
        "google_genai:gemini-2.5-flash", "gemini-1.5-flash was shut down by Google in September 2025"
    ),
    "gemini-1.5-flash-8b": ModelAlias(
        "google_genai:gemini-2.5-flash-lite", "gemini-1.5-flash-8b was shut down by Google in September 2025"
    ),
    "gemini-1.5-pro": ModelAlias(
        "google_genai:gemini-2.5-pro", "gemini-1.5-pro was shut down by Google in September 2025"
    ),
}
"""Legacy name -> model. Keys are matched case-insensitively, ``_`` and ``-`` alike."""

TEXT_ONLY_NAMES: dict[str, str] = {
    "gpt-3.5-turbo": "gpt-4o-mini",
}
"""Legacy names of models that cannot see images, with the name to use instead."""


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


_LOOKUP: dict[str, str] = {_normalise(k): k for k in MODEL_ALIASES}


def known_model_names() -> list[str]:
    """The legacy model names ``get_model`` accepts, in table order."""
    return list(MODEL_ALIASES)


def resolve_model_name(model_name: str) -> str:
    """The ``provider:model`` id a legacy name (or an explicit id) runs on.

    Parameters
    ----------
    model_name : str
        A legacy name such as ``"gpt-4o"`` or ``"claude_3_5_sonnet"``, or ``"provider:model"``.

    Returns
    -------
    str
        The ``init_chat_model`` id. A retired model's successor is returned with a ``UserWarning``.

    Raises
    ------
    SpikemergeError
        The name is unknown (the message lists the known names) or the model takes no images.
    """
    if not isinstance(model_name, str) or not model_name.strip():
        raise SpikemergeError(f"model_name must be a non-empty string, not {model_name!r}")
    if ":" in model_name:
        return model_name.strip()
    key = _normalise(model_name)
    for text_only, instead in TEXT_ONLY_NAMES.items():
        if key == _normalise(text_only):
            raise SpikemergeError(
                f"model {model_name!r} does not take images, and merge judgements need figures: use {instead!r}"
            )
    if key not in _LOOKUP:
        raise SpikemergeError(
            f"unknown model {model_name!r}: use one of {', '.join(MODEL_ALIASES)}, "
            "or any init_chat_model id written as 'provider:model' (e.g. 'openai:gpt-4o', 'ollama:llava')"
        )
    alias = MODEL_ALIASES[_LOOKUP[key]]
    if alias.retired:
        warnings.warn(
            f"{model_name!r}: {alias.retired}; using {alias.target} instead "
            "(pass 'provider:model' to get_model to choose another)",
            UserWarning,
            stacklevel=3,
        )
    return alias.target


def _build(spec: ModelSpec, kwargs: dict[str, Any]) -> BaseChatModel:
    """Create the chat model (tests replace this to hand out a fake model)."""
    return init_model(spec, base_url=kwargs.pop("base_url", None), model_kwargs=kwargs)


def get_model(model_name: str, **kwargs: Any) -> BaseChatModel:
    """A vision chat model for a legacy model name, ready for ``run_vlm_merge``.

    Parameters
    ----------
    model_name : str
        A name the earlier tool accepted (``"gpt-4o"``, ``"gpt-4o-mini"``, ``"gpt-4.1"``,
        ``"claude_4_sonnet"``, ``"claude_3_5_sonnet"``, ``"claude_3_haiku"``,
        ``"gemini-2.5-pro"``, ``"gemini-1.5-flash"``, ...; see ``known_model_names()``), or any
        ``init_chat_model`` id written as ``"provider:model"``.
    **kwargs
        Passed to ``init_chat_model`` (``temperature``, ``timeout``, ``api_key``, ``base_url``...).

    Returns
    -------
    BaseChatModel
        The provider's chat model, with the provider's own retries off (the judge retries).

    Raises
    ------
    SpikemergeError
        Unknown name (lists the known ones), missing API key (names the variable to set, read
        from the environment or a ``.env`` file), missing provider package, or a model that
        takes no images.
    """
    model_id = resolve_model_name(model_name)
    load_env()
    base_url = kwargs.get("base_url")
    spec = parse_model_id(model_id, base_url)
    require_key(spec, base_url, kwargs)
    chat = _build(spec, dict(kwargs))
    check_images_supported(chat, spec.id)
    return chat


__all__ = ["MODEL_ALIASES", "ModelAlias", "get_model", "known_model_names", "resolve_model_name"]
