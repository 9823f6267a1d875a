"""The `retable` command. Heavy libraries are imported inside the commands, so --help is fast."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from retable.cli_options import option_fields, with_config_options
from retable.config import build_config, default
from retable.errors import BudgetExhausted, UserError

app = typer.Typer(
    help="Adapt a retriever to a new domain by tuning only a small code-indexed table, from a plain-text description.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


def user_errors(fn):
    """A UserError becomes one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except BudgetExhausted as exc:
            typer.echo(f"stopped: {exc} — finished stages and every LLM reply are kept; rerun with a larger --budget-tokens to go on", err=True)
            raise typer.Exit(3) from None
        except KeyboardInterrupt:
            typer.echo("interrupted — finished stages and LLM calls are kept; rerun the same command to resume", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _generate_fields() -> list[str]:
    """`retable generate` takes every setting except those only the table and audit stages read."""
    from retable.commands.stages import CODES_STAGE, TUNE_STAGE, audit_stages, data_stages

    data = {f.split(".")[0] for s in data_stages(True) + data_stages(False) for f in s.config}
    later = {f.split(".")[0] for s in (CODES_STAGE, TUNE_STAGE, *audit_stages()) for f in s.config} - data
    return [f for f in option_fields() if f not in later]


Description = Annotated[str, typer.Argument(help="Text file describing the domain and its users, or - for stdin.")]
Corpus = Annotated[Optional[Path], typer.Option(help="Your items: BEIR corpus.jsonl or JSONL with id and text. Without it, items are synthesized "
                                                     "from the description.")]
Out = Annotated[Optional[Path], typer.Option(help="Run folder (resumable; adapt and generate share it). (default: runs/<description name>)")]
ApiKey = Annotated[Optional[str], typer.Option(help="API key (or RETABLE_API_KEY / OPENAI_API_KEY).")]
ConfigFile = Annotated[Optional[Path], typer.Option(help="JSON file of any RunConfig fields; flags override it.")]
PromptsDir = Annotated[Optional[Path], typer.Option(help="Folder of .jinja templates overriding the shipped ones by name.")]


def _run(description: str, corpus: Path | None, out: Path | None, config: Path | None, prompts: Path | None, api_key: str | None,
         *, generate_only: bool, **settings) -> Path:
    """What adapt and generate share: read and check the input, build the config, run the pipeline."""
    from retable.files import MAX_DESCRIPTION_READ, check_corpus_path, read_description
    from retable.llm.factory import make_llm
    from retable.commands.run import run_adapt
    from retable.prompts import Prompts

    text = read_description(description, sys.stdin.buffer.read(MAX_DESCRIPTION_READ) if description == "-" else None)
    if corpus is not None:
        check_corpus_path(corpus)
    urls = [u.strip() for u in (settings.pop("base_url", None) or "").split(",") if u.strip()]
    if len(urls) > 1:
        settings["endpoints"] = [{"url": u} for u in urls]
    else:
        settings["base_url"] = urls[0] if urls else None
    cfg = build_config(config, **settings)
    run_dir = out or Path("runs") / (Path(description).stem if description != "-" else "stdin")
    return run_adapt(text, run_dir, cfg, make_llm(cfg, api_key), corpus=corpus, prompts=Prompts(prompts) if prompts else None,
                     log=_log, generate_only=generate_only)


@app.command()
@user_errors
@with_config_options(option_fields())
def adapt(description: Description, corpus: Corpus = None, out: Out = None, api_key: ApiKey = None, config: ConfigFile = None,
          prompts: PromptsDir = None, **settings) -> None:
    """Generate synthetic pairs, quantize the items, tune the code table, audit, and write a report."""
    report = _run(description, corpus, out, config, prompts, api_key, generate_only=False, **settings)
    typer.echo(f"report: {report}")


@app.command()
@user_errors
@with_config_options(_generate_fields())
def generate(description: Description, corpus: Corpus = None, out: Out = None, api_key: ApiKey = None, config: ConfigFile = None,
             prompts: PromptsDir = None, **settings) -> None:
    """Only the training data: synthetic pairs, filtered, as generated_pairs.jsonl ({query, positive, format, item_id, ...})."""
    path = _run(description, corpus, out, config, prompts, api_key, generate_only=True, **settings)
    typer.echo(f"pairs: {path}")


def _not_in_adapter(run_dir: Path, out: Path) -> None:
    """An output file may not land in the run's adapter folders (it would replace a file search reads)."""
    from retable.runfiles import ADAPTER, INDEXED

    target = out.resolve()
    for adapter in (run_dir / ADAPTER, run_dir / INDEXED / ADAPTER):
        if target.is_relative_to(adapter.resolve()):
            raise UserError(f"--json {out} is inside the run's adapter {adapter} — write the metrics elsewhere")


@app.command("eval")
@user_errors
def eval_(
    run_dir: Path = typer.Argument(..., help="A run folder written by `retable adapt`."),
    dataset: Path = typer.Option(..., help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the metrics as JSON here."),
    baselines: bool = typer.Option(False, help="Also train and score every table kind, the query-linear adapter and full fine-tuning on the run's "
                                               "kept pairs (minutes)."),
) -> None:
    """nDCG@10 and Recall@100 for bm25, frozen_flat, frozen_pq, adapted, frozen_hybrid and adapted_hybrid (and baselines) on a BEIR collection."""
    from retable.commands.evaluate import eval_run
    from retable.files import check_writable, write_json

    if json_out:
        _not_in_adapter(run_dir, json_out)
        check_writable(json_out)  # before minutes of encoding, not after
    results = eval_run(run_dir, dataset, baselines=baselines, log=_log)
    typer.echo(f"{'system':<18} {'nDCG@10':>8} {'R@100':>8} {'params':>11} {'train s':>8} {'bytes':>11}")
    for name, m in results.items():
        size = "-" if m.get("artifact_bytes") is None else f"{m['artifact_bytes']:,}"
        secs = "-" if m.get("train_seconds") is None else f"{m['train_seconds']:.1f}"
        typer.echo(f"{name:<18} {m['ndcg@10']:>8.4f} {m['recall@100']:>8.4f} {m['trainable_parameters']:>11,} {secs:>8} {size:>11}")
    if json_out:
        write_json(json_out, results)


@app.command()
@user_errors
def audit(
    run_dir: Path = typer.Argument(..., help="A run folder written by `retable adapt`."),
    probe: Optional[Path] = typer.Option(None, help="BEIR folder of real queries (corpus.jsonl, queries.jsonl, "
                                                    "qrels/test.tsv): nDCG@10 before and after."),
    judge_pairs: Optional[int] = typer.Option(None, help="Kept pairs the LLM judge reads. (default: the "
                                                         f"run's, {default('judge_pairs')} for new runs)"),
    api_key: Optional[str] = typer.Option(None, help="API key for a remote judge (or RETABLE_API_KEY / OPENAI_API_KEY)."),
    prompts: PromptsDir = None,
) -> None:
    """Audit a finished run again (optionally against real --probe queries): verdict, audit.json, report.md, report.html."""
    from retable.commands.run import run_audit

    report, verdict = run_audit(run_dir, probe=probe, judge_pairs=judge_pairs, api_key=api_key, prompts=prompts, log=_log)
    typer.echo(f"verdict: {verdict}")
    typer.echo(f"report: {report}")


@app.command()
@user_errors
def search(
    run_dir: Path = typer.Argument(..., help="A run folder (or its adapter/ folder)."),
    query: str = typer.Argument(..., help="The query text."),
    k: int = typer.Option(10, "-k", min=1, help="How many items to return."),
    dense: bool = typer.Option(False, "--dense", help="The tuned table alone, without BM25 (scores are inner products, not fused 0..1 scores)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Read the item vectors from this LanceDB folder (written by `retable export RUN --to "
                                                         "lancedb DB` for this adapter) instead of memory."),
) -> None:
    """Search the adapter's items: BM25 fused with the tuned table (the adapter's fusion rule), or --dense for the table alone."""
    from retable.serving.load import load_adapter

    from retable.runfiles import CONFIG, ITEMS, RunFolder

    run = RunFolder(run_dir)
    if run.has(CONFIG):  # a run folder: its own setting (a damaged config.json is one line, not a traceback)
        from retable.commands.run import finished_run_config

        threshold = finished_run_config(run_dir).ann_threshold
    else:
        threshold = None
    index = load_adapter(run_dir, ann_threshold=threshold, db=db)
    hits = index.search(query, k, hybrid=index.hybrid and not dense)
    shown = run.indexed() or run
    ids = [i for i, _ in hits]
    texts = {it.id: it.encode_text() for it in shown.items()} if shown.has(ITEMS) else dict(zip(ids, index.texts(ids)))
    for rank, (item_id, score) in enumerate(hits, 1):
        snippet = texts.get(item_id, "")[:90].replace("\n", " ")
        typer.echo(f"{rank:>3}  {score:7.4f}  {item_id}  {snippet}")


@app.command()
@user_errors
def index(
    run_dir: Path = typer.Argument(..., help="A run folder written by `retable adapt` (description-only or corpus mode)."),
    corpus: Path = typer.Option(..., "--corpus", help="JSONL of the real items, one {\"id\", \"text\"[, \"title\"]} per line."),
    keep_codes: bool = typer.Option(False, "--keep-codes", help="Code the items with the run's quantizer and serve its table as it is, without "
                                                                "refitting or tuning (fast; for a run whose codes were fitted on a corpus like this "
                                                                "one)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Also write the indexed items' vectors and texts into this LanceDB folder (as `retable "
                                                         "export RUN --to lancedb DB`); search it with --db."),
) -> None:
    """When the real items arrive: fit the adapter's codes to them, tune its table on their pseudo-queries (no LLM call, no real query
    needed; BM25's share comes from the run), and audit it on them. Resumable. `retable search`, `load_adapter(RUN)` and
    `retable eval` then serve these items; the report says whether the adapter lost against the frozen encoder on them."""
    from retable.commands.index import index_run

    if db is not None:
        from retable.files import check_out
        from retable.serving.db import DB_META

        check_out(db, DB_META)  # before the work, not after it
    report, verdict = index_run(run_dir, corpus, keep_codes=keep_codes, log=_log)
    if db is not None:
        from retable.serving.export import write_db

        write_db(run_dir, db, log=_log)
    typer.echo(f"verdict: {verdict}")
    typer.echo(f"report: {report}")


@app.command()
@user_errors
def export(
    run_dir: Path = typer.Argument(..., help="A finished run folder (its shipped adapter: indexed/ once `retable index` ran) or an adapter folder."),
    out: Path = typer.Argument(..., help="The folder to write: new, empty, or an earlier export "
                                         "of the same kind (replaced once the new one is whole)."),
    to: str = typer.Option(..., "--to", help="sentence-transformers: a model folder, SentenceTransformer(DIR, trust_remote_code=True), whose encode "
                                             "gives the adapter's vectors (pq_residual and residual tables). lancedb: the items' vectors and texts "
                                             "in a LanceDB table, for `retable search --db`."),
) -> None:
    """Serve the adapter outside retable: as a sentence-transformers model for any vector store, or as a LanceDB database of its items."""
    from retable.serving.export import export as run_export

    typer.echo(run_export(run_dir, to, out, log=_log))


def main() -> None:
    """Run the CLI; a usage mistake (unknown option, a value of the wrong type) is one line, exit 2."""
    try:  # typer >= 0.25 ships its own copy of click
        from typer._click import exceptions as click_errors
    except ImportError:
        from click import exceptions as click_errors

    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="retable", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else "retable --help", err=True)
        sys.exit(2)
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "retable"
        typer.echo(f"error: {exc.format_message()} — see `{where} --help`", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
