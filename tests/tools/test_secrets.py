"""Keys handed over in code are scrubbed like keys from the environment, whatever their shape."""

from __future__ import annotations

import logging

from pydantic import SecretStr

from spikemerge.tools.secrets import ScrubFilter, register_model_secrets, scrub
from tests.fakes import FakeChatModel


class _KeyedFake(FakeChatModel):
    api_key: SecretStr | None = None


def test_a_key_inside_a_chat_model_object_is_scrubbed_from_logs():
    key = "plainkey-0f9e8d7c6b5a"  # no provider's key shape: only the registry can catch it
    assert scrub(f"auth {key}") == f"auth {key}"
    model = _KeyedFake(messages=iter([]), api_key=SecretStr(key))
    register_model_secrets(model)
    assert key not in scrub(f"auth {key}")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling with %s", (key,), None)
    ScrubFilter().filter(record)
    assert key not in record.getMessage()


def test_a_key_given_as_a_keyword_is_scrubbed_and_other_keywords_are_not():
    register_model_secrets(None, {"api_key": "kw-secret-123456", "http_auth": "user:pw-98765",
                                  "temperature": "0.123456"})
    assert scrub("kw-secret-123456 at 0.123456 as user:pw-98765") == "*** at 0.123456 as ***"
