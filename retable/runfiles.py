"""The run folder's layout: every file a run holds, by name, with a typed reader and writer for each.
No other module names a run file; stages declare the names they read and write from here.

>>> run = RunFolder(Path("runs/demo"))
>>> run.path(KEPT).name
'pairs.kept.jsonl'

Data of the agent's later rounds (round_*.jsonl / round_*.npy, written by the filter stage) is read
together with the first round's: `items()`, `queries()`, `item_emb()` and `query_emb()` return both,
so rows of items and embeddings always line up.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict

from retable.files import (atomic_write_bytes, atomic_write_text, fingerprint, read_npy, read_records, sha256_file, write_json, write_npy,
                           write_records)
from retable.records import DomainBrief, DroppedPair, Item, Pair, Query, RoundLog

DESCRIPTION = "description.txt"
CONFIG = "config.json"
PROMPTS_DIR = "prompts_dir.txt"  # the --prompts folder the run used, so `retable audit` renders the same judge
MANIFEST = "manifest.json"
LOCK = "run.lock"  # held while a command works in the folder (runlock.py)
LOCK_SUFFIX = ".lock"  # beside an adapter folder, `adapter.lock`: held while its files are written or read (runlock.adapter_lock)
LLM_CACHE = "llm_cache.sqlite"
ENDPOINTS = "endpoints.json"
BRIEF = "brief.json"
ITEMS = "items.jsonl"
QUERIES = "queries.jsonl"
ITEM_EMB = "item_emb.npy"
QUERY_EMB = "query_emb.npy"
KEPT = "pairs.kept.jsonl"
DROPPED = "pairs.dropped.jsonl"
ROUND_ITEMS = "round_items.jsonl"
ROUND_QUERIES = "round_queries.jsonl"
ROUND_ITEM_EMB = "round_item_emb.npy"
ROUND_QUERY_EMB = "round_query_emb.npy"
ROUNDS = "rounds.json"
GENERATED = "generated_pairs.jsonl"
PSEUDO = "pseudo_queries.jsonl"  # LLM-free queries for every item (agent/pseudo.py)
PSEUDO_EMB = "pseudo_emb.npy"
TEACHER = "teacher.json"  # the teacher's fusion rule (or set BM25 share) and the LLM queries' evidence
TEACHER_LABELS = "teacher_labels.npz"  # every training query's candidates and teacher scores
QUANTIZER = "codes/quantizer.faiss"
CODES = "codes/codes.npy"
ADAPTER = "adapter"  # the artifact folder, which also ships alone; its files:
ADAPTER_QUANTIZER, ADAPTER_TABLE, ADAPTER_CODES, ADAPTER_IDS, ADAPTER_META = (
    "quantizer.faiss", "table.safetensors", "codes.npy", "item_ids.json", "adapter.json")
ADAPTER_FILES = (ADAPTER_QUANTIZER, ADAPTER_TABLE, ADAPTER_CODES, ADAPTER_IDS, ADAPTER_META)
ADAPTER_ITEM_EMB = "item_emb.npy"  # only for tables that start at the frozen encoder (not `compressed`)
ADAPTER_LEXICAL = "bm25"  # the items' BM25 index (a folder, bm25s' own files) for hybrid search
ADAPTER_LEXICAL_FILES = tuple(f"{ADAPTER_LEXICAL}/{f}" for f in (
    "params.index.json", "vocab.index.json", "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "corpus.jsonl",
    "corpus.mmindex.json"))
SPLITS = "splits.json"


def in_adapter(*names: str) -> tuple[str, ...]:
    """Run file names of files in the run's adapter folder."""
    return tuple(f"{ADAPTER}/{n}" for n in names)


ADAPTER_OUTPUTS = in_adapter(*ADAPTER_FILES, ADAPTER_ITEM_EMB, *ADAPTER_LEXICAL_FILES)  # what the table stages write
TUNE = "tune.json"
JUDGE = "judge.json"
AUDIT = "audit.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
EVAL_CACHE = "eval_cache"
INDEXED = "indexed"  # `retable index RUN --corpus FILE`: a run of its own over the real items, whose adapter ships

ROUND_FILES = [ROUND_ITEMS, ROUND_QUERIES, ROUND_ITEM_EMB, ROUND_QUERY_EMB, ROUNDS]
INDEX_RECORD = "index.json"  # in RUN/indexed/: the corpus, whether the codes were refitted, the table's tuning
# the names of the files a run writes (anywhere in its folder): a temporary file a killed run left is removed
# only when it would have replaced one of these, or a file in eval_cache/ (runlock.py)
RUN_FILE_NAMES = frozenset(Path(v).name for k, v in list(globals().items())
                           if k.isupper() and isinstance(v, str) and "." in v.lstrip(".")) | {Path(f).name for f in ADAPTER_LEXICAL_FILES}


def owns_temp(path: Path, target: str) -> bool:
    """Whether the temporary file `path`, written to replace `target` (a name), is one a run made."""
    return target in RUN_FILE_NAMES or path.parent.name == EVAL_CACHE


class Splits(BaseModel):
    """The query ids of the kept pairs in each split (by item: an item's pairs share a split)."""

    model_config = ConfigDict(extra="forbid")

    train: list[str]
    val: list[str]
    test: list[str]


class TeacherRecord(BaseModel):
    """The teacher stage's fusion of BM25 with the frozen encoder (also the one hybrid search serves): the
    prior rule, or the BM25 share set; the evidence the run's own LLM queries give about fixed shares
    (recorded, never acted on: they reuse their item's words); and what it labelled."""

    model_config = ConfigDict(extra="forbid")

    weight: float | None  # BM25's share for the minmax rule; None for a weight-free rule
    chosen_on: str  # "prior" or "setting" ("llm_queries" or "default" in runs before rules)
    label_queries: int
    mrr_by_weight: dict[str, float]  # MRR@10 of each fixed share on the LLM queries
    candidates: int
    labelled_by_format: dict[str, int]
    rule: str = "minmax"  # runs before rules fused at a fixed share
    rule_mrr: float | None = None  # the rule's MRR@10 on the same LLM queries
    best_fixed_minus_rule: list[float] | None = None  # the best fixed share's MRR@10 minus the rule's: mean and paired 95% interval

    def fusion(self):
        from retable.retrieval.fusion import Fusion

        return Fusion(self.rule, self.weight)


class Labels(BaseModel):
    """teacher_labels.npz as arrays: per labelled query its id, format, own item row, candidate rows and teacher scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    query_ids: np.ndarray
    formats: np.ndarray
    pos: np.ndarray
    rows: np.ndarray
    scores: np.ndarray


class TuneRecord(BaseModel):
    """What the tune stage did: the table kind, its best epoch on validation, the history, the
    encoder's checksum before and after (it must not change), and the codes' collisions."""

    model_config = ConfigDict(extra="forbid")

    table_kind: str
    best_epoch: int
    initial_val_mrr: float
    best_val_mrr: float
    seconds: float
    history: list[dict]
    encoder_checksum_before: str
    encoder_checksum_after: str
    train_pairs: int
    val_pairs: int
    collision_rate: float
    collision_rate_by_query_mass: float
    collision_residuals: int
    train_queries_by_format: dict[str, int] = {}
    hybrid_weight: float | None = None
    hybrid_rule: str | None = None
    strength: float = 1.0  # the best epoch's correction scaled by this (runs before strengths: 1)
    val_loss_by_strength: dict[str, float] = {}
    strength_interval: list[float] | None = None  # the best strength's validation loss minus strength 1's: mean, paired 95% interval
    lowest_epoch: int | None = None  # the epoch of lowest validation loss (runs before the epoch's interval: None)
    epoch_interval: list[float] | None = None  # its validation loss minus the untuned table's: mean, paired 95% interval


class RunFolder:
    """Typed access to one run folder's files."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    def has(self, name: str) -> bool:
        return self.path(name).is_file()

    def count(self, name: str) -> int:
        """Lines of a JSONL run file (its records), read without parsing them."""
        with open(self.path(name), encoding="utf-8") as fh:
            return sum(1 for _ in fh)

    # inputs of the run
    def description(self) -> str | None:
        return self.path(DESCRIPTION).read_text(encoding="utf-8") if self.has(DESCRIPTION) else None

    def write_description(self, text: str) -> None:
        atomic_write_text(self.path(DESCRIPTION), text)

    def prompts_dir(self) -> Path | None:
        return Path(self.path(PROMPTS_DIR).read_text(encoding="utf-8").strip()) if self.has(PROMPTS_DIR) else None

    def write_prompts_dir(self, folder: Path | None) -> None:
        if folder is None:
            self.path(PROMPTS_DIR).unlink(missing_ok=True)
        else:
            atomic_write_text(self.path(PROMPTS_DIR), str(Path(folder).resolve()) + "\n")

    def config_json(self) -> dict:
        data = json.loads(self.path(CONFIG).read_text())
        if isinstance(data, dict):
            data.setdefault("encoder_backend", "torch")  # a run from before the onnx-int8 path was encoded by torch
        return data

    def write_config(self, config: BaseModel) -> None:
        write_json(self.path(CONFIG), config.model_dump())

    # generated data
    def brief(self) -> DomainBrief:
        return DomainBrief.model_validate_json(self.path(BRIEF).read_text())

    def write_brief(self, brief: DomainBrief) -> None:
        write_json(self.path(BRIEF), brief.model_dump())

    def first_items(self) -> list[Item]:
        return read_records(self.path(ITEMS), Item)

    def write_items(self, items: Iterable[Item]) -> None:
        write_records(self.path(ITEMS), items)

    def first_queries(self) -> list[Query]:
        return read_records(self.path(QUERIES), Query)

    def write_queries(self, queries: Iterable[Query]) -> None:
        write_records(self.path(QUERIES), queries)

    def first_item_emb(self) -> np.ndarray:
        return read_npy(self.path(ITEM_EMB))

    def first_query_emb(self) -> np.ndarray:
        return read_npy(self.path(QUERY_EMB))

    def write_item_emb(self, emb: np.ndarray) -> None:
        write_npy(self.path(ITEM_EMB), emb)

    def write_query_emb(self, emb: np.ndarray) -> None:
        write_npy(self.path(QUERY_EMB), emb)

    def items(self) -> list[Item]:
        return self.first_items() + (read_records(self.path(ROUND_ITEMS), Item) if self.has(ROUND_ITEMS) else [])

    def queries(self) -> list[Query]:
        return self.first_queries() + (read_records(self.path(ROUND_QUERIES), Query) if self.has(ROUND_QUERIES) else [])

    def item_emb(self) -> np.ndarray:
        return _stack(read_npy(self.path(ITEM_EMB)), read_npy(self.path(ROUND_ITEM_EMB)) if self.has(ROUND_ITEM_EMB) else None)

    def query_emb(self) -> np.ndarray:
        return _stack(read_npy(self.path(QUERY_EMB)), read_npy(self.path(ROUND_QUERY_EMB)) if self.has(ROUND_QUERY_EMB) else None)

    def kept(self) -> list[Pair]:
        return read_records(self.path(KEPT), Pair)

    def write_kept(self, kept: list[Pair]) -> None:
        write_records(self.path(KEPT), kept)

    def dropped(self) -> list[DroppedPair]:
        return read_records(self.path(DROPPED), DroppedPair)

    def rounds(self) -> list[RoundLog]:
        return [RoundLog.model_validate(r) for r in json.loads(self.path(ROUNDS).read_text())] if self.has(ROUNDS) else []

    def write_filtered(self, kept: list[Pair], dropped: list[DroppedPair], rounds: list[RoundLog], round_items: list[Item],
                       round_queries: list[Query], round_item_emb: np.ndarray, round_query_emb: np.ndarray) -> None:
        """The filter stage's files: kept and dropped pairs, and what the agent's later rounds added."""
        write_records(self.path(ROUND_ITEMS), round_items)
        write_records(self.path(ROUND_QUERIES), round_queries)
        write_npy(self.path(ROUND_ITEM_EMB), round_item_emb)
        write_npy(self.path(ROUND_QUERY_EMB), round_query_emb)
        write_json(self.path(ROUNDS), [r.model_dump() for r in rounds])
        write_records(self.path(KEPT), kept)
        write_records(self.path(DROPPED), dropped)

    def write_generated(self, rows: list[dict]) -> Path:
        atomic_write_text(self.path(GENERATED), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return self.path(GENERATED)

    def write_endpoints(self, stats: dict) -> None:
        write_json(self.path(ENDPOINTS), stats)

    # the teacher
    def pseudo_queries(self) -> list[Query]:
        return read_records(self.path(PSEUDO), Query)

    def write_pseudo(self, queries: list[Query], emb: np.ndarray) -> None:
        write_records(self.path(PSEUDO), queries)
        write_npy(self.path(PSEUDO_EMB), emb)

    def pseudo_emb(self) -> np.ndarray:
        return read_npy(self.path(PSEUDO_EMB))

    def teacher(self) -> TeacherRecord:
        return TeacherRecord.model_validate_json(self.path(TEACHER).read_text())

    def write_teacher(self, record: TeacherRecord, labels: Labels) -> None:
        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(labels, k) for k in Labels.model_fields})
        atomic_write_bytes(self.path(TEACHER_LABELS), buf.getvalue())
        write_json(self.path(TEACHER), record.model_dump())

    def teacher_labels(self) -> Labels:
        with np.load(self.path(TEACHER_LABELS), allow_pickle=False) as z:
            return Labels(**{k: z[k] for k in Labels.model_fields})

    # codes and tuning
    def codes(self) -> np.ndarray:
        return read_npy(self.path(CODES)).astype(np.int64)

    def write_codes(self, codes: np.ndarray) -> None:
        write_npy(self.path(CODES), codes.astype(np.int32))

    def write_quantizer(self, quantizer) -> None:
        self.path(QUANTIZER).parent.mkdir(exist_ok=True)
        quantizer.save(self.path(QUANTIZER))

    def write_no_pairs(self, dim: int) -> None:
        """Empty query and pair files, for a run over real items that has no LLM queries (`retable index`)."""
        self.write_queries([])
        self.write_query_emb(np.zeros((0, dim), dtype=np.float32))
        self.write_kept([])
        write_records(self.path(DROPPED), [])

    def splits(self) -> Splits:
        return Splits.model_validate_json(self.path(SPLITS).read_text())

    def write_splits(self, splits: Splits) -> None:
        write_json(self.path(SPLITS), splits.model_dump())

    def tune(self) -> TuneRecord:
        return TuneRecord.model_validate_json(self.path(TUNE).read_text())

    def write_tune(self, record: TuneRecord) -> None:
        write_json(self.path(TUNE), record.model_dump())

    # audit
    def judge_json(self) -> dict | None:
        return json.loads(self.path(JUDGE).read_text()) if self.has(JUDGE) else None

    def write_judge(self, summary: BaseModel | None) -> None:
        write_json(self.path(JUDGE), None if summary is None else summary.model_dump(mode="json"))

    def audit_json(self) -> str:
        return self.path(AUDIT).read_text()

    def write_audit(self, audit: BaseModel) -> None:
        write_json(self.path(AUDIT), audit.model_dump(mode="json"))

    def write_report(self, markdown: str, html: str) -> None:
        atomic_write_text(self.path(REPORT_MD), markdown)
        atomic_write_text(self.path(REPORT_HTML), html)

    def indexed(self) -> "RunFolder | None":
        """The run `retable index` made over the real items, once its adapter is written."""
        child = RunFolder(self.path(INDEXED))
        return child if child.has(f"{ADAPTER}/{ADAPTER_META}") else None

    def index_record(self) -> dict | None:
        """index.json of `retable index` (the corpus, refit or kept codes, the tuning's best epoch), once it ran."""
        child = self.indexed()
        return json.loads(child.path(INDEX_RECORD).read_text()) if child is not None and child.has(INDEX_RECORD) else None

    def write_index_record(self, record: dict) -> None:
        write_json(self.path(INDEX_RECORD), record)

    def description_only(self) -> bool:
        """Whether the run's items are synthetic (no --corpus): its adapter must be indexed on real items before it serves them."""
        if not self.has(ITEMS):
            return False
        with open(self.path(ITEMS), encoding="utf-8") as fh:
            first = fh.readline()
        return bool(first.strip()) and Item.model_validate_json(first).source != "corpus"

    # the run's own adapter folder (adapters/artifact.py writes and reads it whole), and its single files
    def adapter_folder(self) -> Path:
        return self.path(ADAPTER)

    def adapter_file(self, name: str) -> Path:
        return self.path(ADAPTER) / name

    def adapter_codes(self) -> np.ndarray:
        return read_npy(self.adapter_file(ADAPTER_CODES))

    def write_adapter_codes(self, codes: np.ndarray) -> None:
        write_npy(self.adapter_file(ADAPTER_CODES), codes)

    def shipped_adapter(self) -> Path:
        """The adapter that serves: the indexed one over the real items when there is one, else the run's."""
        child = self.indexed()
        return (child or self).path(ADAPTER)

    def corpus_cache(self, corpus: Path, encoder_checksum: str) -> Path:
        """Where the encoder's embeddings of a corpus file are kept, so each corpus is encoded once."""
        return self.path(EVAL_CACHE) / f"{fingerprint([sha256_file(corpus), encoder_checksum])}.npy"


def _stack(base: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    return base if extra is None or not len(extra) else np.vstack([base, extra.reshape(-1, base.shape[1])])
