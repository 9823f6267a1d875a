"""The run folder's manifest: which stages finished, with which fingerprint, and the checksums of
their output files. A stage whose fingerprint and files still match is skipped (resume); a stage
whose output file is missing or altered is recomputed, never silently used."""

from __future__ import annotations

import json
import os
import resource
import signal
import time
from pathlib import Path
from typing import Callable

from retable.files import sha256_file, write_json
from retable.llm import UsageLog
from retable.records import StageUsage
from retable.runfiles import MANIFEST


FAULT_ENV = "RETABLE_FAULT"  # testing only: "STAGE:start" or "STAGE:written" kills the process there


def _fault_point(stage: str, point: str) -> None:
    """Crash tests kill the process at exact points (before a stage, or after its files are written
    but before the manifest records them) to prove that a rerun resumes correctly."""
    if os.environ.get(FAULT_ENV) == f"{stage}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def reset_peak_rss() -> bool:
    """Starts a new peak-memory window for this process (Linux: writing 5 to /proc/self/clear_refs resets
    VmHWM); False where the system has no such reset, and the peak is then the process's so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak resident memory since the last reset_peak_rss (else since it started), in MB.
    Ray's workers are other processes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


class RunState:
    def __init__(self, run_dir: Path, usage: UsageLog, log: Callable[[str], None] = print):
        self.run_dir = run_dir
        self.path = run_dir / MANIFEST
        self.usage = usage
        self.log = log
        try:
            self.stages: dict = json.loads(self.path.read_text())["stages"] if self.path.exists() else {}
        except (json.JSONDecodeError, KeyError, OSError):
            self.stages = {}  # an unreadable manifest means: recompute everything (LLM calls stay cached)

    def is_current(self, name: str, key: str) -> bool:
        entry = self.stages.get(name)
        if not entry or entry.get("key") != key:
            return False
        return all(self._digest_now(rel) == digest for rel, digest in entry["files"].items())

    def _digest_now(self, rel: str) -> str | None:
        path = self.run_dir / rel
        return sha256_file(path) if path.is_file() else None  # None: absent, as an optional output may be

    def digest(self, rel: str) -> str | None:
        """A run file's checksum as its stage recorded it (or as it is now, for a file no stage wrote)."""
        for entry in self.stages.values():
            if rel in entry.get("files", {}):
                return entry["files"][rel]
        return self._digest_now(rel)

    def run(self, name: str, key: str, files: list[str], compute: Callable[[], None], *, optional: tuple[str, ...] = (), force: bool = False) -> None:
        """Run `compute` (which writes `files` into the run folder; those in `optional` may be absent)
        unless the stage is current, or `force`."""
        if not force and self.is_current(name, key):
            self.log(f"{name}: up to date, skipped")
            return
        self.usage.stage = name
        self.usage.by_stage[name] = StageUsage()
        _fault_point(name, "start")
        own_window = reset_peak_rss()
        start = time.perf_counter()
        compute()
        seconds = time.perf_counter() - start
        _fault_point(name, "written")
        missing = [rel for rel in files if rel not in optional and not (self.run_dir / rel).is_file()]
        if missing:
            raise RuntimeError(f"stage {name} did not write {missing}: its declared outputs and its code disagree")
        u = self.usage.by_stage[name]
        for other, entry in list(self.stages.items()):  # a file has one writer: an older stage that claimed it (a renamed one) is forgotten
            if other != name and set(entry.get("files", {})) & set(files):
                del self.stages[other]
        self.stages[name] = {
            "key": key,
            "files": {rel: self._digest_now(rel) for rel in files},
            "seconds": round(seconds, 3),
            "usage": u.model_dump(),
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_scope": "stage" if own_window else "process",  # the stage's own peak, or the process's high-water mark
        }
        write_json(self.path, {"stages": self.stages})
        tokens = u.prompt_tokens + u.completion_tokens
        calls = f", {u.calls} LLM calls ({u.cached} cached, {u.invalid} invalid), {tokens} tokens" if u.calls or u.cached else ""
        self.log(f"{name}: done in {seconds:.1f} s{calls}, peak memory {self.stages[name]['peak_rss_mb']:,.0f} MB")

    def edited(self, name: str, key: str) -> bool:
        """Did someone change `name`'s files by hand since it wrote them with this same key?"""
        entry = self.stages.get(name)
        return bool(entry) and entry.get("key") == key and all(self._digest_now(r) for r in entry["files"]) and not self.is_current(name, key)

    def accept_edit(self, name: str, key: str, files: list[str]) -> None:
        """Record `files`, changed by hand since `name` wrote them with this same key, as the stage's output."""
        entry = self.stages[name]
        entry["files"] = {rel: self._digest_now(rel) for rel in files}
        write_json(self.path, {"stages": self.stages})
        self.log(f"{name}: edited by hand, kept (later stages rerun)")

    def usage_by_stage(self) -> dict[str, StageUsage]:
        return {name: StageUsage(**entry["usage"]) for name, entry in self.stages.items()}

    def seconds_by_stage(self) -> dict[str, float]:
        return {name: entry["seconds"] for name, entry in self.stages.items()}
