"""LLM backends behind one small interface (see base.LLM) and the cached, validating client."""

from retable.agent.llm.base import LLM, Reply
from retable.agent.llm.client import LLMClient, UsageLog

__all__ = ["LLM", "Reply", "LLMClient", "UsageLog"]
