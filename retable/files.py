"""Files: atomic writes, JSONL of records, checksums, and loading a user's corpus."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

from pydantic import BaseModel

from retable.errors import UserError
from retable.records import Item

R = TypeVar("R", bound=BaseModel)


@contextmanager
def replacing(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside `path` to write; when the block ends without error it is fsynced and renamed
    onto `path` (readers never see half a file), otherwise removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_records(path: Path, records: Iterable[BaseModel]) -> None:
    """One JSON line per record, streamed to disk (the records may come from a generator)."""
    with replacing(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(r.model_dump_json() + "\n")


def read_records(path: Path, cls: type[R]) -> list[R]:
    with path.open(encoding="utf-8") as fh:
        return [cls.model_validate_json(line) for line in fh if line.strip()]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(obj) -> str:
    """A short stable hash of any JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


MAX_DESCRIPTION_CHARS = 20_000  # the description goes into every prompt of a 2k-token model


def read_description(source: str, stdin: bytes | str | None = None) -> str:
    """The domain description from a file path, or from stdin (bytes or text) when `source` is '-'."""
    if source == "-":
        raw, where = stdin or b"", "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(f"description file {source} not found — pass a text file describing the domain, or - for stdin")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read description {source} ({exc.strerror}) — check the path and its permissions") from None
        where = source
    try:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"description from {where} is not UTF-8 text — save it as UTF-8") from None
    text = text.strip()
    if not text:
        raise UserError(f"description from {where} is empty — write a few sentences about the domain and its users")
    if "\x00" in text:
        raise UserError(f"description from {where} looks binary (it holds NUL bytes) — pass a plain text file")
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise UserError(f"description from {where} has {len(text):,} characters — keep it under {MAX_DESCRIPTION_CHARS:,}; a few sentences are enough (pass your documents with --corpus)")
    return text


def check_corpus_path(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"corpus file {path} not found — pass a BEIR corpus.jsonl or JSONL with id and text")


def iter_corpus(path: Path) -> Iterator[Item]:
    """Items from BEIR `corpus.jsonl` (`_id`, `title`, `text`) or JSONL with `id` and `text`, read one
    line at a time; a bad line is a UserError naming it. Only the ids seen are kept in memory."""
    check_corpus_path(path)
    seen: set[str] = set()
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot open corpus {path} ({exc.strerror}) — check the path and its permissions") from None
    with fh:
        try:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    raise UserError(f"corpus {path} line {n} is not valid JSON — each line must be one JSON object") from None
                if not isinstance(row, dict):
                    raise UserError(f"corpus {path} line {n} is not a JSON object — each line needs id and text")
                item_id = row.get("_id", row.get("id"))
                if item_id is None or str(item_id).strip() == "":
                    raise UserError(f"corpus {path} line {n} has no id — add an \"id\" (or BEIR \"_id\") field")
                item_id = str(item_id)
                text = row.get("text")
                if not isinstance(text, str) or not text.strip():
                    raise UserError(f"corpus {path} line {n} (id {item_id}) has no text — add a non-empty \"text\" field or remove the line")
                if item_id in seen:
                    raise UserError(f"corpus {path} line {n} repeats id {item_id} — ids must be unique")
                seen.add(item_id)
                title = row.get("title") or ""
                yield Item(id=item_id, title=str(title).strip(), text=text.strip(), source="corpus")
        except UnicodeDecodeError:
            raise UserError(f"corpus {path} is not UTF-8 text — convert it to UTF-8 JSONL") from None
    if not seen:
        raise UserError(f"corpus {path} holds no items — it needs one JSON object with id and text per line")


def load_corpus(path: Path) -> list[Item]:
    return list(iter_corpus(path))


def check_corpus(path: Path) -> int:
    """Read the whole corpus once, streaming, so bad input fails before any LLM call; returns its size."""
    return sum(1 for _ in iter_corpus(path))


def write_npy(path: Path, array) -> None:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def encode_to_npy(encoder, texts: list[str], path: Path, chunk: int = 8192):
    """Encode `texts` a chunk at a time straight into a .npy file on disk (written beside `path`, then
    renamed), so memory holds one chunk's vectors, not the corpus's twice; returns the file mapped read-only."""
    import numpy as np
    from tqdm import tqdm

    with replacing(path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), encoder.dim))
        with tqdm(total=len(texts), desc="encode", unit="text", disable=len(texts) <= chunk) as bar:
            for start in range(0, len(texts), chunk):
                out[start:start + chunk] = encoder.encode(texts[start:start + chunk], progress=len(texts) <= chunk)
                bar.update(min(chunk, len(texts) - start))
        out.flush()
        del out
    return np.load(path, mmap_mode="r")


def read_npy(path: Path):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except ValueError:
        raise UserError(f"{path} is not a plain numeric array (it would need unpickling, which retable never does) — rebuild it") from None
