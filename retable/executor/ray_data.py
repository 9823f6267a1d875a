"""`--executor ray`: the LLM jobs of generation, the encoder, and the filter's top-k search as Ray Data
pipelines (`map_batches`). Locally Ray starts on this machine's CPUs; with RAY_ADDRESS set it joins
that cluster, whose nodes need retable installed. The run folder, the LLM cache and the manifest stay
with the driver: workers get a snapshot of the cache and send back the replies they paid for, which
the driver writes as they arrive, so an interrupted stage loses no call that finished."""

from __future__ import annotations

import functools

import logging
import os
import socket

import numpy as np
from tqdm import tqdm

from retable.errors import BudgetExhausted, UserError
from retable.retrieval.dense import build

SEARCH_BATCH = 1024  # queries per search task
ENCODE_BATCH = 256  # texts per encoding batch


def init_ray():
    """Ray, initialised once: joins RAY_ADDRESS when set, else starts on this machine."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UserError("--executor ray needs Ray Data — pip install 'retable[ray]'") from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or None
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        except ConnectionError as exc:
            raise UserError(f"cannot join the Ray cluster at RAY_ADDRESS={address} ({exc}) — "
                            "check the address or unset it to run Ray locally") from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # a line per finished dataset, and one about the bars it hides
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # retable shows its own bar
    ctx.print_on_execution_start = False
    return ray


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Ray waits minutes for a head that is not there; a plain TCP connect tells in seconds."""
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"RAY_ADDRESS={address} is not host:port (or ray://host:port, or auto) — fix it or unset it to run Ray locally")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at RAY_ADDRESS={address} ({exc.strerror or exc}) "
                        "— start it, fix the address, or unset it to run Ray locally") from None


class _Calls:
    """A Ray Data task body: runs LLM jobs by index with the worker's copy of the client, and returns each
    job's result or error together with the new cache entries and the usage it caused."""

    def __init__(self, fn, client, jobs, budget_split: int = 1):
        self.fn, self.client, self.jobs = fn, client, jobs  # pickled together: fn's closure shares this client
        self.budget_split = budget_split  # with a token budget, each job may spend this share of what is left

    def __call__(self, batch: dict) -> dict:
        import ray.cloudpickle as cloudpickle

        from retable.llm.client import UsageLog

        payloads = []
        if self.client.budget_tokens is not None and not hasattr(self, "_left"):
            self._left = self.client.budget_tokens  # what was left when the wave was sent
        for i in batch["id"]:
            if self.client.budget_tokens is not None:
                self.client.budget_tokens = self._left // self.budget_split
            usage = UsageLog()
            usage.stage = self.client.usage.stage
            self.client.usage = usage
            try:
                result, error = self.fn(self.jobs[int(i)]), None
            except Exception as exc:  # noqa: BLE001 — sent to the driver, which raises it there
                result, error = None, exc
            payloads.append(cloudpickle.dumps((result, error, self.client.cache.take_new() if self.client.cache else [], usage.current())))
        return {"id": batch["id"], "payload": np.array(payloads, dtype=object)}


class _Encode:
    """A Ray Data actor holding one copy of the frozen encoder (subclassed per encoder name, so that
    no constructor argument has to live in Ray's object store)."""

    encoder_name = ""
    encoder_backend = ""

    def __init__(self):
        from retable.encoder.frozen import Encoder

        self.encoder = Encoder(self.encoder_name, self.encoder_backend)

    def __call__(self, batch: dict) -> dict:
        return {"id": batch["id"], "emb": self.encoder.encode([str(t) for t in batch["text"]])}


class _Search:
    """A Ray Data task body: the driver's faiss index (serialized once into the object store) searched for a
    batch of queries, IVF-PQ candidates re-scored with the item vectors."""

    def __init__(self, index_ref, items_ref, queries_ref, k: int):
        self.index_ref, self.items_ref, self.queries_ref, self.k = index_ref, items_ref, queries_ref, k

    def __call__(self, batch: dict) -> dict:
        import faiss
        import ray

        from retable.retrieval.dense import search

        ids = batch["id"]
        index = faiss.deserialize_index(ray.get(self.index_ref))
        items = ray.get(self.items_ref) if self.items_ref is not None else None
        _, rows = search(index, items, ray.get(self.queries_ref)[ids], self.k)
        return {"id": ids, "rows": rows}


class RayExecutor:
    name = "ray"
    remote = True  # LLMClient hands its jobs to map_calls

    def searcher(self, ann_threshold: int):
        return functools.partial(self.search, ann_threshold=ann_threshold)

    def wrap_encoder(self, encoder):
        return RayEncoder(encoder, self)

    def __init__(self):
        self.ray = init_ray()

    def cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def map_calls(self, client, fn, jobs: list, *, desc: str, unit: str = "call") -> list:
        """`fn` over `jobs` as Ray tasks, results in job order; the first failed job's error (in job
        order) is raised after every other job's replies are cached. With a token budget the jobs go in
        waves of `concurrency`, each job allowed an equal share of what is left, so the budget holds
        however many workers run at once."""
        results: list = [None] * len(jobs)
        errors: dict[int, BaseException] = {}
        wave = len(jobs) if client.budget_tokens is None else max(1, client.concurrency)
        with tqdm(total=len(jobs), desc=desc, unit=unit) as bar:
            for start in range(0, len(jobs), wave):
                ids = list(range(start, min(start + wave, len(jobs))))
                self._run_wave(client, fn, jobs, ids, results, errors, bar)
                if errors:
                    break
        if errors:
            error = errors[min(errors)]
            if isinstance(error, BudgetExhausted):  # the worker knew only its own share: report the run's totals
                total = client.usage.total()
                raise BudgetExhausted(total.prompt_tokens + total.completion_tokens, client.budget_tokens)
            raise error
        return results

    def _run_wave(self, client, fn, jobs: list, ids: list[int], results: list, errors: dict, bar) -> None:
        import ray.cloudpickle as cloudpickle

        remote = client.llm.parallel_safe  # remote endpoints: many light tasks; an in-process model: one per CPU
        ds = self.ray.data.from_items([{"id": i} for i in ids], override_num_blocks=len(ids))
        out = ds.map_batches(_Calls(fn, client, jobs, budget_split=len(ids)), batch_size=1, num_cpus=0.25 if remote else 1,
                             compute=self.ray.data.TaskPoolStrategy(size=client.concurrency if remote else None))
        for row in out.iter_rows():
            i = int(row["id"])
            result, error, new, usage = cloudpickle.loads(row["payload"])
            for key, reply in new:
                if client.cache is not None:
                    client.cache.put(key, reply)
            client.add_usage(usage)
            results[i] = result
            if error is not None:
                errors[i] = error
            bar.update(1)

    def encode(self, encoder_name: str, encoder_backend: str, texts: list[str], dim: int, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        ds = self.ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
        actors = min(self.cpus(), max(1, len(texts) // ENCODE_BATCH))
        actor = type("Encode", (_Encode,), {"encoder_name": encoder_name, "encoder_backend": encoder_backend})
        out = ds.map_batches(actor, batch_size=ENCODE_BATCH, num_cpus=1,
                             compute=self.ray.data.ActorPoolStrategy(size=actors))
        emb = np.zeros((len(texts), dim), dtype=np.float32)
        with tqdm(total=len(texts), desc="encode (ray)", unit="text", disable=not progress) as bar:
            for batch in out.iter_batches(batch_format="numpy", batch_size=None):
                emb[batch["id"]] = batch["emb"]
                bar.update(len(batch["id"]))
        return emb

    def search(self, item_emb: np.ndarray, query_emb: np.ndarray, k: int, ann_threshold: int) -> np.ndarray:
        """Top-k item rows per query: the index (IVF-PQ above `ann_threshold` items) is built once here,
        and the queries are split over Ray tasks."""
        import faiss

        k = min(k, len(item_emb))
        if len(query_emb) == 0:
            return np.zeros((0, k), dtype=np.int64)
        index = build(item_emb, ann_threshold=ann_threshold)
        index_ref = self.ray.put(faiss.serialize_index(index))
        items_ref = None if isinstance(index, faiss.IndexFlat) else self.ray.put(np.ascontiguousarray(item_emb))  # for re-scoring
        queries_ref = self.ray.put(np.ascontiguousarray(query_emb))
        ds = self.ray.data.range(len(query_emb), override_num_blocks=max(1, -(-len(query_emb) // SEARCH_BATCH)))
        rows = np.full((len(query_emb), k), -1, dtype=np.int64)
        for batch in ds.map_batches(_Search(index_ref, items_ref, queries_ref, k),
                                    batch_size=SEARCH_BATCH).iter_batches(batch_format="numpy", batch_size=None):
            rows[batch["id"]] = batch["rows"]
        return rows


class RayEncoder:
    """The pipeline's encoder with `encode` run by Ray; everything else (checksum, dim, name) is the
    local copy's."""

    def __init__(self, local, executor: RayExecutor):
        self._local, self._executor = local, executor

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self._executor.encode(self._local.name, self._local.variant, list(texts), self._local.dim, progress=progress)

    def __getattr__(self, name: str):
        return getattr(self._local, name)
