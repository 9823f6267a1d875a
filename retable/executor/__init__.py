"""Where the heavy, parallel parts of a run execute: `local` (threads for LLM calls, this process for
encoding and search) or `ray` (Ray Data pipelines on a local Ray instance or the cluster that
RAY_ADDRESS names). Both keep the same pairs for the same inputs and seed (docs/scale.md)."""

from __future__ import annotations

import functools

from retable.retrieval.dense import top_k_rows


class LocalExecutor:
    """Everything in this process: LLM jobs on the client's own threads, encoding and search here."""

    name = "local"
    remote = False  # LLMClient runs its jobs itself

    def searcher(self, ann_threshold: int):
        """The filter's top-k search: (item vectors, query vectors, k) -> rows."""
        return functools.partial(top_k_rows, ann_threshold=ann_threshold)

    def wrap_encoder(self, encoder):
        return encoder


def make_executor(name: str):
    """A LocalExecutor, or a RayExecutor for `ray`."""
    if name == "local":
        return LocalExecutor()
    from retable.executor.ray_data import RayExecutor

    return RayExecutor()
