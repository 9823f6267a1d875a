"""Local llama.cpp servers (llama-cpp-python's OpenAI-compatible `llama_cpp.server`) for a packaged
model, one process per port on 127.0.0.1: replicas for an endpoint pool on one machine, as the tests
and the scale benchmark use them. Needs the `server` extra of llama-cpp-python."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from retable.llm.embedded import embedded_model_path
from retable.errors import UserError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llama_servers(n: int, log_dir: Path, *, model: str = "smollm2-135m", alias: str = "smollm2", n_threads: int = 1,
                  n_ctx: int = 2048, start_timeout: float = 90.0):
    """Start `n` servers (`n_threads` each, prompt processing included), wait until each answers /v1/models, yield their base URLs,
    stop them after."""
    procs, urls, logs = [], [], []
    try:
        for i in range(n):
            port = free_port()
            log = (log_dir / f"llama-server-{i}.log").open("w+")
            cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path(model)), "--host", "127.0.0.1",
                   "--port", str(port), "--model_alias", alias, "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--n_threads_batch",
                   str(n_threads), "--verbose", "False"]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}))
            urls.append(f"http://127.0.0.1:{port}/v1")
            logs.append(log)
        deadline = time.time() + start_timeout
        for proc, url, log in zip(procs, urls, logs):
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise UserError(f"llama_cpp.server exited: {log.read()[-500:]}")
                try:
                    urllib.request.urlopen(url + "/models", timeout=2)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise UserError(f"llama_cpp.server at {url} did not answer within {start_timeout:g} s") from None
                    time.sleep(0.5)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
