"""Read a BEIR-layout collection: corpus.jsonl, queries.jsonl, qrels/test.tsv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from retable.errors import UserError
from retable.files import load_corpus
from retable.records import Item


def load_queries(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise UserError(f"{path} not found — a BEIR folder needs queries.jsonl")
    out = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    out[str(row["_id"])] = str(row["text"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise UserError(f"{path} line {n} is not a BEIR query ({{\"_id\", \"text\"}})") from None
    return out


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise UserError(f"{path} not found — a BEIR folder needs qrels/test.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        rows = csv.reader(fh, delimiter="\t")
        for n, row in enumerate(rows, 1):
            if n == 1 and row and not row[-1].strip().lstrip("-").isdigit():
                continue  # header
            if len(row) < 3:
                continue
            score = int(row[2])
            if score > 0:
                qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_beir(folder: Path) -> tuple[list[Item], dict[str, str], dict[str, dict[str, int]]]:
    if not folder.is_dir():
        raise UserError(f"--dataset {folder} is not a folder — pass a BEIR folder with corpus.jsonl, queries.jsonl and qrels/test.tsv")
    corpus = load_corpus(folder / "corpus.jsonl")
    queries = load_queries(folder / "queries.jsonl")
    qrels = load_qrels(folder / "qrels" / "test.tsv")
    queries = {qid: text for qid, text in queries.items() if qid in qrels}
    if not queries:
        raise UserError(f"no query in {folder}/queries.jsonl has a judgement in qrels/test.tsv")
    return corpus, queries, qrels
