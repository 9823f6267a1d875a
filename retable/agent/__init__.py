"""The synthetic-data agent, as stages: the brief, synthetic items (or the user's corpus), LLM queries, the
round-trip filter and the agent's rounds, and the LLM-free pseudo-queries. The LLM backends are retable.llm;
the commands that run the stages are retable.commands."""
