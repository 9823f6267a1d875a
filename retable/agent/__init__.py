"""The synthetic-data agent: LLM backends, the stages, and the pipeline that runs them."""
