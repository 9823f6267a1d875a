"""Build the backend a RunConfig names."""

from __future__ import annotations

from retable.llm.base import LLM
from retable.config import RunConfig


def make_llm(config: RunConfig, api_key: str | None = None) -> LLM:
    if config.llm == "embedded":
        from retable.llm.embedded import EmbeddedLLM

        return EmbeddedLLM(config.model, parallel=config.llm_parallel, weights=config.llm_weights)
    if config.llm == "openai" and config.endpoints:
        from retable.llm.openai_compat import OpenAICompatLLM
        from retable.llm.pool import EndpointPool

        retries = min(config.llm_retries, 1)  # the pool's failover is the retry
        pool = EndpointPool([(OpenAICompatLLM(config.model, e.url, api_key, timeout=config.llm_timeout, max_retries=retries),
                              e.concurrency or config.concurrency)
                             for e in config.endpoints], cooldown=config.endpoint_cooldown)
        pool.check_reachable()
        return pool
    if config.llm == "openai":
        from retable.llm.openai_compat import OpenAICompatLLM

        llm = OpenAICompatLLM(config.model, config.base_url, api_key, timeout=config.llm_timeout, max_retries=config.llm_retries)
        llm.check_reachable()
        return llm
    from retable.llm.langchain_chat import LangChainLLM

    return LangChainLLM.from_name(config.model)
