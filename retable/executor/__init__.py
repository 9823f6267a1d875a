"""Where the heavy, parallel parts of a run execute: `local` (threads for LLM calls, this process for
encoding and search) or `ray` (Ray Data pipelines on a local Ray instance or the cluster that
RAY_ADDRESS names). Both give the same pairs for the same inputs and seed."""

from __future__ import annotations

EXECUTORS = ("local", "ray")


def make_executor(name: str, *, concurrency: int = 4):
    """None for the local executor (the pipeline's own code paths), a RayExecutor for ray."""
    if name == "local":
        return None
    from retable.executor.ray_data import RayExecutor

    return RayExecutor(concurrency=concurrency)
