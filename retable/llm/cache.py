"""A sqlite cache of LLM calls (WAL mode), so a rerun pays for nothing twice."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from retable.llm.base import Reply


class CallCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, text TEXT NOT "
            "NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL)"
        )
        self._db.commit()

    def get(self, key: str) -> Reply | None:
        with self._lock:
            row = self._db.execute("SELECT text, prompt_tokens, completion_tokens FROM calls WHERE key=?", (key,)).fetchone()
        return Reply(*row) if row else None

    def put(self, key: str, reply: Reply) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?)", (key, *reply))
            self._db.commit()

    def snapshot(self) -> dict[str, Reply]:
        """Every cached reply, for executors whose workers cannot open this file."""
        with self._lock:
            return {k: Reply(*rest) for k, *rest in self._db.execute("SELECT key, text, prompt_tokens, completion_tokens FROM calls")}

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class MemoryCache:
    """A worker's copy of the run's cache: reads a snapshot, and keeps what it adds in `new` so the
    driver can write it to the run's CallCache."""

    def __init__(self, snapshot: dict[str, Reply]):
        self._data = dict(snapshot)
        self.new: list[tuple[str, Reply]] = []

    def get(self, key: str) -> Reply | None:
        return self._data.get(key)

    def put(self, key: str, reply: Reply) -> None:
        self._data[key] = reply
        self.new.append((key, reply))

    def take_new(self) -> list[tuple[str, Reply]]:
        out, self.new = self.new, []
        return out
