"""Secrets: API keys come from the environment or `.env`, and are scrubbed from every text we show or write."""

from __future__ import annotations

import logging
import os
import re

PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "azure_openai": ("AZURE_OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "google_genai": ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    "ollama": (),
}
"""Environment variables that carry each provider's key (any one is enough; empty: no key)."""

_SECRET_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),  # OpenAI / Anthropic style
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),  # Google API keys
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{12,}"),
)


def load_env() -> None:
    """Read ``.env`` from the working directory (or a parent) without overriding the environment."""
    try:
        from dotenv import find_dotenv, load_dotenv
    except ImportError:  # pragma: no cover - python-dotenv is a dependency
        return
    path = find_dotenv(usecwd=True)
    if path:
        load_dotenv(path, override=False)


SECRET_WORDS: tuple[str, ...] = ("key", "token", "secret", "password", "auth")
"""A keyword argument whose name holds one of these carries a secret (``api_key``, ``http_auth``...)."""


def is_secret_name(name: str) -> bool:
    """Whether a keyword argument of this name carries a secret."""
    return any(word in name.lower() for word in SECRET_WORDS)


_REGISTERED: set[str] = set()
"""Keys handed over in code (``api_key=...`` or inside a chat model object): scrubbed like env keys."""


def register_secret(value: object) -> None:
    """Scrub ``value`` (a string or pydantic ``SecretStr``) from every text from now on, whatever its shape."""
    reveal = getattr(value, "get_secret_value", None)
    text = reveal() if callable(reveal) else value
    if isinstance(text, str) and len(text.strip()) >= 6:
        _REGISTERED.add(text.strip())


def register_model_secrets(chat_model: object, model_kwargs: dict | None = None) -> None:
    """Register the keys a chat model holds (its ``SecretStr`` fields) and any key-like keyword given."""
    for name, value in (model_kwargs or {}).items():
        if is_secret_name(name) and value is not None:
            register_secret(value if callable(getattr(value, "get_secret_value", None)) else str(value))
    fields = getattr(chat_model, "__dict__", {})
    for value in list(fields.values()):
        if callable(getattr(value, "get_secret_value", None)):
            register_secret(value)


def _known_secrets() -> list[str]:
    values = list(_REGISTERED)
    for names in PROVIDER_KEYS.values():
        for name in names:
            value = os.environ.get(name, "")
            if len(value) >= 6:
                values.append(value)
    return values


def scrub(text: str, extra: tuple[str, ...] = ()) -> str:
    """Replace every API key (set in the environment, passed explicitly, or key-shaped) with ``***``."""
    for secret in (*_known_secrets(), *extra):
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs keys from every record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(str(record.msg))
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in args)
        return True
