"""Fake chat models for offline tests: scripted replies, tool calls, latency, provider errors.

``FakeChatModel`` extends LangChain's ``GenericFakeChatModel`` so code under test can call
``bind_tools`` and ``with_structured_output`` as on a real provider model. A reply is taken
from ``responder(messages, kwargs)`` when given (route by message content, safe under
concurrency), else from the ``messages`` script in order. A reply may be:

- a ``str`` or an ``AIMessage``: returned as is;
- a ``dict`` or a pydantic model while tools are bound: a tool call to the first bound tool
  with those arguments (this is how ``with_structured_output`` gets its answer);
- an exception instance or class: raised (see ``http_error`` for real provider errors);
- a callable taking no argument: called, and its result used as the reply.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import httpx
import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

Reply = Any
Responder = Callable[[list[BaseMessage], dict[str, Any]], Reply]


class FakeChatModel(GenericFakeChatModel):
    """A scriptable fake chat model that supports tools, structured output, latency and errors.

    Parameters
    ----------
    messages
        An iterator of replies used in order when there is no ``responder``.
    responder
        ``f(messages, kwargs) -> reply``; ``kwargs`` holds bound ``tools`` and ``tool_choice``.
    latency
        Seconds each call takes (``asyncio.sleep`` in async calls, so many can overlap).
    usage
        ``usage_metadata`` attached to every reply that has none (``None``: attach nothing).
    model_name
        The name reported to code that asks the model for it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    messages: Iterator[Any] = Field(default_factory=lambda: iter(()))
    responder: Responder | None = None
    latency: float = 0.0
    usage: dict[str, int] | None = Field(
        default_factory=lambda: {"input_tokens": 1000, "output_tokens": 50, "total_tokens": 1050}
    )
    model_name: str = "fake-vlm"
    calls: list[tuple[list[BaseMessage], dict[str, Any]]] = Field(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def scripted(cls, *replies: Reply, **kwargs: Any) -> "FakeChatModel":
        """A fake that gives ``replies`` in order."""
        return cls(messages=iter(replies), **kwargs)

    @property
    def _llm_type(self) -> str:
        return "fake-chat-model"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Any:
        """Bind tools as a real provider does: OpenAI tool schemas in the call's kwargs."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # -- replies ----------------------------------------------------------------------------

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        with self._lock:
            self.calls.append((list(messages), dict(kwargs)))
            if self.responder is not None:
                reply = self.responder(list(messages), dict(kwargs))
            else:
                try:
                    reply = next(self.messages)
                except StopIteration:
                    raise RuntimeError("FakeChatModel script exhausted") from None
        return self._to_message(reply, kwargs)

    def _to_message(self, reply: Reply, kwargs: dict[str, Any]) -> AIMessage:
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, type) and issubclass(reply, BaseException):
            raise reply()
        if callable(reply) and not isinstance(reply, (BaseModel, AIMessage)):
            return self._to_message(reply(), kwargs)
        if isinstance(reply, BaseModel) and not isinstance(reply, AIMessage):
            reply = reply.model_dump()
        if isinstance(reply, dict):
            tools = kwargs.get("tools") or []
            if tools:
                name = tools[0]["function"]["name"]
                reply = AIMessage(
                    content="",
                    tool_calls=[{"name": name, "args": reply, "id": f"call_{next(_ids)}", "type": "tool_call"}],
                )
            else:
                reply = AIMessage(content=json.dumps(reply))
        if isinstance(reply, str):
            reply = AIMessage(content=reply)
        if not isinstance(reply, AIMessage):
            raise TypeError(f"FakeChatModel cannot reply with {type(reply).__name__}")
        if self.usage is not None and reply.usage_metadata is None:
            reply = reply.model_copy(update={"usage_metadata": dict(self.usage)})
        return reply

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            time.sleep(self.latency)
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages, kwargs))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            await asyncio.sleep(self.latency)
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages, kwargs))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Stream the reply word by word, then its tool calls and usage in a last chunk.

        (``GenericFakeChatModel`` drops tool calls when streaming; LangGraph streams a model
        whenever ``stream_mode="messages"`` is on, so a planner fake must keep them.)
        """
        message = self._generate(messages, stop=stop, run_manager=None, **kwargs).generations[0].message
        words = re.split(r"(\s)", message.content) if isinstance(message.content, str) and message.content else []
        for word in words:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word, id=message.id))
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk
        last = AIMessageChunk(
            content="",
            id=message.id,
            tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(message.tool_calls)
            ],
            usage_metadata=message.usage_metadata,
            chunk_position="last",
        )
        chunk = ChatGenerationChunk(message=last)
        if run_manager:
            run_manager.on_llm_new_token("", chunk=chunk)
        yield chunk


_ids = itertools.count(1)

_STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    502: openai.InternalServerError,
    503: openai.InternalServerError,
}


def _request() -> httpx.Request:
    return httpx.Request("POST", "https://api.openai.com/v1/chat/completions")


def http_error(status: int, message: str = "", headers: dict[str, str] | None = None) -> openai.APIStatusError:
    """The exception the OpenAI client raises for an HTTP status (429, 401, 500, ...)."""
    cls = _STATUS_ERRORS.get(status, openai.APIStatusError)
    response = httpx.Response(status, request=_request(), headers=headers or {})
    return cls(message or f"Error code: {status}", response=response, body=None)


def timeout_error() -> openai.APITimeoutError:
    """The exception the OpenAI client raises when a request times out."""
    return openai.APITimeoutError(request=_request())
