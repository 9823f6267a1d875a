"""Read a BEIR-layout collection: corpus.jsonl, queries.jsonl, qrels/test.tsv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from retable.errors import UserError
from retable.files import item_id, load_corpus
from retable.records import Item


def load_queries(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise UserError(f"{path} not found — a BEIR folder needs queries.jsonl")
    out = {}
    with path.open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    qid, text = row["_id"], row["text"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise UserError(f"{path} line {n} is not a BEIR query ({{\"_id\", \"text\"}})") from None
                qid = item_id(qid, f"{path} line {n}")
                if qid in out:
                    raise UserError(f"{path} line {n} repeats query id {qid} — query ids must be unique (each is judged by its id)")
                out[qid] = str(text)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def load_qrels(path: Path, log=print) -> dict[str, dict[str, int]]:
    """Judgements with a positive grade; a grade of 0 or below is not relevant (BEIR and trec_eval read it so),
    and negative grades, which some collections use for "judged bad", are counted aloud."""
    if not path.is_file():
        raise UserError(f"{path} not found — a BEIR folder needs qrels/test.tsv")
    qrels: dict[str, dict[str, int]] = {}
    negative = 0
    with path.open(encoding="utf-8") as fh:
        rows = csv.reader(fh, delimiter="\t")
        for n, row in enumerate(rows, 1):
            if n == 1 and row and not _is_number(row[-1]):
                continue  # header
            if len(row) < 3:
                continue
            try:
                value = float(row[2])  # 1 and 1.0 alike
            except ValueError:
                raise UserError(f"{path} line {n}: relevance {row[2]!r} is not a number — write query-id, corpus-id, score") from None
            if not value.is_integer():
                raise UserError(f"{path} line {n}: relevance {row[2]!r} is not a whole number — BEIR relevance grades are integers")
            score = int(value)
            if score > 0:
                qrels.setdefault(row[0], {})[row[1]] = score
            elif score < 0:
                negative += 1
    if negative:
        log(f"warning: {negative:,} judgements in {path} have a negative grade; they are read as not relevant, as trec_eval reads them")
    return qrels


def check_judged(corpus: list[Item], qrels: dict[str, dict[str, int]], folder: Path, log=print) -> dict[str, dict[str, int]]:
    """Judgements of documents the corpus lacks score zero whatever the system does: all missing is an
    error (the qrels belong to another corpus), some missing a warning with counts. The qrels are kept
    as they are, so the numbers stay comparable with BEIR's."""
    ids = {it.id for it in corpus}
    pairs = [(q, d) for q, docs in qrels.items() for d in docs]
    unknown = [(q, d) for q, d in pairs if d not in ids]
    if pairs and len(unknown) == len(pairs):
        raise UserError(f"none of the {len(pairs):,} judged documents in {folder}/qrels/test.tsv is in its corpus.jsonl "
                        f"(e.g. {unknown[0][1]!r}) — the qrels belong to another corpus")
    if unknown:
        log(f"warning: {len(unknown):,} of {len(pairs):,} judged documents in {folder}/qrels/test.tsv are not in corpus.jsonl; "
            "no system can find them, so every score is capped below 1")
    return qrels


def load_beir(folder: Path, log=print) -> tuple[list[Item], dict[str, str], dict[str, dict[str, int]]]:
    if not folder.is_dir():
        raise UserError(f"--dataset {folder} is not a folder — pass a BEIR folder with corpus.jsonl, queries.jsonl and qrels/test.tsv")
    corpus = load_corpus(folder / "corpus.jsonl", log)
    queries = load_queries(folder / "queries.jsonl")
    qrels = check_judged(corpus, load_qrels(folder / "qrels" / "test.tsv", log), folder, log)
    queries = {qid: text for qid, text in queries.items() if qid in qrels}
    if not queries:
        raise UserError(f"no query in {folder}/queries.jsonl has a judgement in qrels/test.tsv")
    return corpus, queries, qrels
