"""LLM backends behind one small interface (see base.LLM) and the cached, validating client."""

from retable.llm.base import LLM, Reply
from retable.llm.client import LLMClient, UsageLog

__all__ = ["LLM", "Reply", "LLMClient", "UsageLog"]
