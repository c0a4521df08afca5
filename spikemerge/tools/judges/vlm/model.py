"""Resolve the VLM judge's chat model: provider, API key, image support.

Everything that can be checked before a single request is sent is checked here, so a
missing key or a text-only model is a one-line ``SpikemergeError`` raised before any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

from ....errors import SpikemergeError
from ...secrets import PROVIDER_KEYS, load_env, scrub  # noqa: F401  (re-exported for callers)

PROVIDER_PACKAGES: dict[str, str] = {
    "openai": "langchain-openai",
    "azure_openai": "langchain-openai",
    "anthropic": "langchain-anthropic",
    "google_genai": "langchain-google-genai",
    "ollama": "langchain-ollama",
}

PROVIDERS_WITH_RETRIES = {"openai", "azure_openai", "anthropic", "google_genai"}
"""Providers whose client retries on its own; we set their ``max_retries=0`` and retry ourselves."""

TEXT_ONLY_PREFIXES = ("gpt-3.5", "o1-mini", "o3-mini", "text-", "davinci", "deepseek-r1", "deepseek-chat")
"""Model names known not to take images, for models without a profile that says so."""

@dataclass(frozen=True)
class ModelSpec:
    """A model id split into provider and name, e.g. ``openai:gpt-4o``."""

    provider: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.name}"


def parse_model_id(model: str, base_url: str | None = None) -> ModelSpec:
    """Split ``"provider:name"``; infer the provider for bare OpenAI/Anthropic/Gemini names.

    Parameters
    ----------
    model
        ``"openai:gpt-4o"``, ``"anthropic:claude-sonnet-4-5"``, ``"ollama:llava"`` or a bare name.
    base_url
        With a base URL, a bare name is served by an OpenAI-compatible endpoint (vLLM).

    Returns
    -------
    ModelSpec
    """
    if ":" in model:
        provider, name = model.split(":", 1)
        if provider and name:
            return ModelSpec(provider.strip().lower(), name.strip())
    lowered = model.lower()
    if base_url or lowered.startswith(("gpt-", "o1", "o3", "o4", "chatgpt")):
        return ModelSpec("openai", model)
    if lowered.startswith("claude"):
        return ModelSpec("anthropic", model)
    if lowered.startswith("gemini"):
        return ModelSpec("google_genai", model)
    raise SpikemergeError(f"cannot tell the provider of model {model!r}: write it as 'provider:model', e.g. 'openai:gpt-4o'")


def require_key(spec: ModelSpec, base_url: str | None, model_kwargs: dict[str, Any]) -> None:
    """Raise a one-line error naming the env var when the provider's key is missing.

    A key passed explicitly (``api_key=...``) counts; a ``base_url`` endpoint (vLLM) needs no key.
    """
    if base_url or any(k in model_kwargs for k in ("api_key", "openai_api_key", "anthropic_api_key", "google_api_key")):
        return
    names = PROVIDER_KEYS.get(spec.provider)
    if not names:
        return
    if not any(os.environ.get(n, "").strip() for n in names):
        either = " or ".join(names)
        raise SpikemergeError(
            f"no API key for {spec.id}: set {either} in the environment or in a .env file "
            f"(or pick another model, e.g. a local 'ollama:...')"
        )


def check_images_supported(chat_model: BaseChatModel, model_name: str) -> None:
    """Raise when the model is known not to take images (its profile, or a known text-only name)."""
    profile = getattr(chat_model, "profile", None) or {}
    takes_images = profile.get("image_inputs") if isinstance(profile, dict) else None
    bare = model_name.split(":", 1)[-1].lower()
    if takes_images is False or (takes_images is None and bare.startswith(TEXT_ONLY_PREFIXES)):
        raise SpikemergeError(
            f"model {model_name!r} does not take images: choose a vision model such as 'openai:gpt-4o'"
        )


def init_model(
    spec: ModelSpec, *, base_url: str | None, model_kwargs: dict[str, Any]
) -> BaseChatModel:
    """Build the chat model with ``init_chat_model``; the provider's own retries are turned off.

    Raises
    ------
    SpikemergeError
        The provider's integration package is missing, or the provider is unknown.
    """
    from langchain.chat_models import init_chat_model

    kwargs = dict(model_kwargs)
    if base_url:
        kwargs.setdefault("base_url", base_url)
        if not os.environ.get("OPENAI_API_KEY") and "api_key" not in kwargs:
            kwargs["api_key"] = "EMPTY"  # vLLM accepts any key; the client insists on one
    if spec.provider in PROVIDERS_WITH_RETRIES:
        kwargs.setdefault("max_retries", 0)
    try:
        return init_chat_model(spec.name, model_provider=spec.provider, **kwargs)
    except ImportError:
        package = PROVIDER_PACKAGES.get(spec.provider, f"langchain-{spec.provider.replace('_', '-')}")
        raise SpikemergeError(f"provider {spec.provider!r} needs its package: pip install {package}") from None
    except ValueError as exc:
        raise SpikemergeError(f"cannot load model {spec.id}: {scrub(str(exc)).splitlines()[0]}") from None


def model_name_of(chat_model: BaseChatModel) -> str:
    """The model's own name (``model_name``/``model``), else its class name."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(chat_model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(chat_model).__name__


