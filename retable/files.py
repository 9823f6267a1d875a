"""Files: atomic writes, JSONL of records, checksums, and loading a user's corpus."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

from pydantic import BaseModel

from retable.errors import UserError
from retable.records import Item

R = TypeVar("R", bound=BaseModel)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_TEMP = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.(?:tmp|npy)$")  # what `replacing` names its temporary files (group 1: the target)


def write_error(path: Path, exc: OSError) -> UserError:
    """A failed write as one line that names the file and the fix."""
    if exc.errno in NO_SPACE:
        return UserError(f"no space left to write {path} — free some space on that disk (finished stages are kept) and rerun")
    if exc.errno == errno.ENAMETOOLONG:
        long = next((part for part in path.parts if len(part.encode()) > 255), path.name)
        return UserError(f"cannot write a file named {long[:24]}… ({len(long.encode())} "
                         "bytes; this file system allows 255 a name) — choose a shorter name")
    return UserError(f"cannot write {path} ({exc.strerror or exc}) — choose a writable path")


def _temp_beside(path: Path, suffix: str) -> str:
    """A new empty temporary file in `path`'s folder (made if missing), named as `remove_stale_temps` expects."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
        return tmp
    except OSError as exc:
        raise write_error(path, exc) from None


@contextmanager
def replacing(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside `path` to write; when the block ends without error it is fsynced and renamed
    onto `path` (readers never see half a file), otherwise removed. A failed write (no space, a read-only
    folder, a folder where the file should be) is a UserError naming the file."""
    tmp = _temp_beside(path, suffix)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def replacing_folder(path: Path, what: str) -> Iterator[Path]:
    """`replacing` for a folder: a temporary folder beside `path` to build `what` in, renamed onto `path` when
    the block ends without error (an earlier one there is removed only once the new one is whole), else removed."""
    import shutil

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{what}-"))
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp's folder is private; what is built there is not
        old = path.with_name(f".{path.name}.old") if path.exists() else None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path: Path) -> None:
    """Fail now, with one line, if `path` cannot be written later (a folder, a read-only or missing place, a name too long)."""
    try:
        folder = path.is_dir()
    except OSError as exc:
        raise write_error(path, exc) from None
    if folder:
        raise UserError(f"cannot write {path} (it is a folder) — name a file")
    os.unlink(_temp_beside(path, ".tmp"))


def remove_stale_temps(folder: Path, owned=lambda path, target: True) -> int:
    """Temporary files a killed process left behind in a run folder (and its sub-folders) — those that
    `owned(path, target name)` says the run made; only called while the run's lock is held, so none of
    them is being written. Returns how many were removed."""
    removed = 0
    for p in folder.rglob(".*"):
        m = _TEMP.match(p.name)
        if m and p.is_file() and owned(p, m.group(1)):
            p.unlink(missing_ok=True)
            removed += 1
    return removed


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
    """The records of a JSONL file; a damaged line is a UserError naming the file and line."""
    out = []
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        out.append(cls.model_validate_json(line))
                    except ValueError as exc:
                        why = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc).splitlines()[0]
                        raise UserError(f"{path} line {n} is damaged ({why[:120]}) — rerun `retable adapt` to rebuild it") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text — rerun `retable adapt` to rebuild it") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror}) — rerun `retable adapt` to rebuild it") from None
    return out


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
MAX_DESCRIPTION_READ = 4 * MAX_DESCRIPTION_CHARS + 4  # bytes read at most (4 a UTF-8 character): an endless stdin stops here


def read_description(source: str, stdin: bytes | str | None = None) -> str:
    """The domain description from a file path, or from stdin (bytes or text) when `source` is '-'."""
    if source == "-":
        raw, where = stdin or b"", "stdin"
    else:
        path = Path(source)
        check_input_file(path, "description file", "a text file describing the domain, or - for stdin")
        try:
            with path.open("rb") as fh:
                raw = fh.read(MAX_DESCRIPTION_READ)
        except OSError as exc:
            raise UserError(f"cannot read description {source} ({exc.strerror}) — check the path and its permissions") from None
        where = source
    if len(raw) >= MAX_DESCRIPTION_READ:
        raise UserError(f"description from {where} is longer than {MAX_DESCRIPTION_CHARS:,} characters — keep it under that; "
                        "a few sentences are enough (pass your documents with --corpus)")
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
        raise UserError(f"description from {where} has {len(text):,} characters — keep it under {MAX_DESCRIPTION_CHARS:,}; a few sentences are "
                        "enough (pass your documents with --corpus)")
    return text


def check_input_file(path: Path, what: str, want: str) -> None:
    """A regular file to read, or a UserError that says what the path is instead."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{what} {path} is a symlink loop — pass {want}") from None
        if exc.errno == errno.ENOENT:
            raise UserError(f"{what} {path} not found — pass {want}") from None
        raise UserError(f"cannot read {what} {path} ({exc.strerror}) — pass {want}") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {path} is a folder — pass {want}")
    if not stat.S_ISREG(mode):
        raise UserError(f"{what} {path} is not a regular file (a pipe, socket or device) — pass {want}")


def check_corpus_path(path: Path) -> None:
    check_input_file(path, "corpus file", "a BEIR corpus.jsonl or JSONL with id and text")


def item_id(value, where: str) -> str:
    """An id from a JSON row: a non-empty string or an integer (never a bool, float, list or object)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        kind = "missing" if value is None else f"a {type(value).__name__}" + (" (NaN)" if isinstance(value, float) and math.isnan(value) else "")
        raise UserError(f"{where} has an id that is {kind} — ids must be strings or integers")
    text = str(value).strip()
    if not text:
        raise UserError(f"{where} has an empty id — give every line a non-empty \"id\" (or BEIR \"_id\")")
    if any(c in text for c in "\t\n\r\x00"):
        raise UserError(f"{where} has an id with a tab, line break or NUL ({text[:24]!r}) — ids are printed one a line; remove them")
    return text


def corpus_item(row, where: str, seen: set[str], *, empty_ok: bool = False) -> Item | None:
    """One corpus record, checked: a JSON object with an id (not among `seen`, which it then joins) and a
    title or a text, both strings; `where` names it in the error ("corpus FILE line N"). With `empty_ok`,
    a record with neither title nor text is None (skipped) instead of an error."""
    if not isinstance(row, dict):
        raise UserError(f"{where} is not a JSON object — each line needs id and text")
    raw_id = row.get("_id", row.get("id"))
    if raw_id is None:
        raise UserError(f"{where} has no id — add an \"id\" (or BEIR \"_id\") field")
    iid = item_id(raw_id, where)
    text, title = row.get("text"), row.get("title") or ""
    if (text is not None and not isinstance(text, str)) or not isinstance(title, str):
        raise UserError(f"{where} (id {iid}) has a title or text that is not a string — write them as JSON strings")
    text, title = (text or "").strip(), title.strip()
    if iid in seen:
        raise UserError(f"{where} repeats id {iid} — ids must be unique")
    seen.add(iid)
    if not text and not title:
        if empty_ok:
            return None
        raise UserError(f"{where} (id {iid}) has neither title nor text — add a non-empty \"text\" field or remove the line")
    # a title-only document (BEIR allows them) is its title; the encoder reads title + text either way
    return Item(id=iid, title=title if text else "", text=text or title, source="corpus")


def iter_corpus(path: Path, *, strict: bool = False, empty: list[str] | None = None) -> Iterator[Item]:
    """Items from BEIR `corpus.jsonl` (`_id`, `title`, `text`) or JSONL with `id` and `text`, read one
    line at a time; a bad line is a UserError naming it. Only the ids seen are kept in memory. A document
    with neither title nor text (real BEIR collections have a few) is skipped and its id appended to
    `empty`, or, `strict`, refused."""
    check_corpus_path(path)
    seen: set[str] = set()
    n_items = n_empty = 0
    try:
        fh = path.open(encoding="utf-8-sig")  # a byte-order mark some editors write is read past
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
                item = corpus_item(row, f"corpus {path} line {n}", seen, empty_ok=not strict)
                if item is None:
                    n_empty += 1
                    if empty is not None:
                        empty.append(item_id(row.get("_id", row.get("id")), ""))  # checked by corpus_item
                    continue
                n_items += 1
                yield item
        except UnicodeDecodeError:
            raise UserError(f"corpus {path} is not UTF-8 text — convert it to UTF-8 JSONL") from None
    if not n_items:
        empties = f": its {n_empty:,} document{'s have' if n_empty != 1 else ' has'} neither title nor text" if n_empty else ""
        raise UserError(f"corpus {path} holds no items{empties} — it needs one JSON object with id and text per line")


def load_corpus(path: Path, log=print) -> list[Item]:
    """Every item of the corpus; empty documents are skipped and counted aloud."""
    empty: list[str] = []
    items = list(iter_corpus(path, empty=empty))
    warn_empty(path, empty, log)
    return items


def check_corpus(path: Path, *, strict: bool = False, log=print) -> int:
    """Read the whole corpus once, streaming, so bad input fails before any LLM call; returns how many
    items it holds (empty documents skipped, counted aloud, or with `strict` refused)."""
    empty: list[str] = []
    n = sum(1 for _ in iter_corpus(path, strict=strict, empty=empty))
    warn_empty(path, empty, log)
    return n


def warn_empty(path: Path, empty: list[str], log) -> None:
    if empty:
        log(f"warning: skipped {len(empty):,} document{'s' if len(empty) != 1 else ''} of {path} with neither title nor text "
            f"(ids {', '.join(empty[:5])}{', …' if len(empty) > 5 else ''}); they are not indexed, so no search finds them — "
            "--strict refuses such a corpus instead")


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
        _reserve(tmp)  # a full disk fails here, as an OSError, not later as a Bus error
        with tqdm(total=len(texts), desc="encode", unit="text", disable=len(texts) <= chunk) as bar:
            for start in range(0, len(texts), chunk):
                out[start:start + chunk] = encoder.encode(texts[start:start + chunk], progress=len(texts) <= chunk)
                bar.update(min(chunk, len(texts) - start))
        out.flush()
        del out
    return np.load(path, mmap_mode="r")


def _reserve(path: Path) -> None:
    """Allocate the disk blocks of a (sparse) file up front: writing through a memory map into a file the
    disk cannot hold kills the process with SIGBUS, so the space must be known to be there first."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def copy_file(src: Path, dst: Path) -> None:
    """`src` copied onto `dst` atomically (a temporary file beside it, then renamed): a full disk leaves no
    half-written `dst`, and is one line naming it."""
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dst, suffix=".npy" if dst.suffix == ".npy" else ".tmp") as tmp:
        shutil.copyfile(src, tmp)


def read_cached_npy(path: Path, rows: int | None = None):
    """A cache's array, or None when it is absent, damaged (a torn write, a foreign file) or not `rows` long:
    a cache is rebuilt, never reported as tampering."""
    import numpy as np

    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    return array if rows is None or len(array) == rows else None


def read_npy(path: Path):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except ValueError:
        raise UserError(f"{path} is not a plain numeric array (it would need unpickling, which retable never does) — rebuild it") from None


def check_out(out: Path, marker: str) -> None:
    """`out` may be new, empty, or an earlier export of this kind (it holds `marker`): that one is replaced."""
    if out.is_file() or out.is_symlink():
        raise UserError(f"{out} is a file — give a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise UserError(f"{out} is a folder that holds other files — give a new or empty folder (an earlier export there is replaced)")
