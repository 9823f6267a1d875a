"""Where the heavy, parallel parts of a run execute: `local` (threads for LLM calls, this process for
encoding and search) or `ray` (Ray Data pipelines on a local Ray instance or the cluster that
RAY_ADDRESS names). Both keep the same pairs for the same inputs and seed (docs/scale.md)."""

from __future__ import annotations

def make_executor(name: str):
    """None for the local executor (the pipeline's own code paths), a RayExecutor for ray."""
    if name == "local":
        return None
    from retable.executor.ray_data import RayExecutor

    return RayExecutor()
