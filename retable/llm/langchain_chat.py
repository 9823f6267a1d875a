"""Any LangChain chat model (`BaseChatModel`): every LangChain provider works through this."""

from __future__ import annotations

import json

from retable.llm.base import LLM, Message, Reply
from retable.errors import UserError


class LangChainLLM(LLM):
    """Wraps a `BaseChatModel`. Decoding is not constrained, so the schema goes into the prompt and
    the reply is validated (and retried) by the client."""

    backend = "langchain"
    parallel_safe = True
    supports_schema = False

    def __init__(self, chat_model, model: str | None = None):
        super().__init__(model or getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None) or type(chat_model).__name__)
        self.chat_model = chat_model

    @classmethod
    def from_name(cls, name: str | None) -> "LangChainLLM":
        """`provider:model` through langchain's init_chat_model (needs `langchain` and the provider package)."""
        if not name:
            raise UserError("the langchain backend needs --model provider:model (e.g. openai:gpt-4o-mini)")
        try:
            from langchain.chat_models import init_chat_model
        except ImportError:
            raise UserError("--llm langchain from the command line needs the langchain package "
                            "— pip install langchain and the provider's package") from None
        try:
            return cls(init_chat_model(name), model=name)
        except (ImportError, ValueError) as exc:
            raise UserError(f"langchain cannot build {name!r}: {exc}") from None

    def generate(self, messages: list[Message], schema: dict, *, temperature: float, max_tokens: int, seed: int) -> Reply:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
        lc_messages = [kinds[m["role"]](content=m["content"]) for m in messages]
        lc_messages.append(HumanMessage(content="Reply with one JSON object matching this JSON schema, and nothing else:\n" + json.dumps(schema)))
        out = self.chat_model.invoke(lc_messages)
        usage = getattr(out, "usage_metadata", None) or {}
        text = out.content if isinstance(out.content, str) else json.dumps(out.content)
        return Reply(text, usage.get("input_tokens", 0), usage.get("output_tokens", 0))
