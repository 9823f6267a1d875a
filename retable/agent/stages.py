"""The generation stages: brief, items, queries, the two embedding stages, and the agent's rounds
(the round-trip filter, then more items and queries where subtopics or formats fell short). Each
declares what it reads and writes; `retable.stage` derives its cache key from that."""

from __future__ import annotations

from retable.agent.brief import make_brief
from retable.agent.items import synthesize_items
from retable.agent.pseudo import pseudo_queries
from retable.agent.queries import QUERIES_VERSION, write_queries
from retable.agent.rounds import ROUNDS_VERSION, Generated, agent_rounds
from retable.errors import UserError
from retable.files import iter_corpus, sha256_file
from retable.records import Item, Pair, Query
from retable.runfiles import (BRIEF, DROPPED, GENERATED, ITEM_EMB, ITEMS, KEPT, PSEUDO, PSEUDO_EMB, QUERIES, QUERY_EMB, ROUND_FILES, ROUND_ITEMS,
                              ROUND_QUERIES)
from retable.stage import LLM_FIELDS, Context, Stage


def _description(ctx: Context) -> list:
    return [ctx.description]


def _brief(ctx: Context) -> None:
    c = ctx.config
    ctx.run.write_brief(make_brief(ctx.client, ctx.prompts, ctx.description, c.n_subtopics, c.seed))


def _check_brief_edit(ctx: Context) -> None:
    try:
        ctx.run.brief()
    except ValueError as exc:
        raise UserError(f"brief.json was edited and is no longer a valid brief ({str(exc).splitlines()[0]}) — "
                        "fix it or delete it to plan again") from None


BRIEF_STAGE = Stage("brief", _brief, writes=(BRIEF,), config=(*LLM_FIELDS, "seed", "n_subtopics"), prompts=("brief",), inputs=_description,
                    edit_check=_check_brief_edit)


def _first_items(ctx: Context) -> list[Item]:
    items = ctx.run.first_items()
    if not items:
        raise UserError("the LLM wrote no usable item — rerun with another --seed or a stronger --llm (replies are cached)")
    return items


def _synthesize(ctx: Context) -> None:
    c = ctx.config
    ctx.run.write_items(synthesize_items(ctx.client, ctx.prompts, ctx.description, ctx.run.brief(), c.n_subtopics * c.items_per_subtopic, c.seed))
    _first_items(ctx)


SYNTHETIC_ITEMS = Stage("items", _synthesize, writes=(ITEMS,), reads=(BRIEF,), config=(*LLM_FIELDS, "seed", "n_subtopics", "items_per_subtopic"),
                        prompts=("items",), inputs=_description)
CORPUS_ITEMS = Stage("items", lambda ctx: ctx.run.write_items(iter_corpus(ctx.corpus, strict=ctx.config.strict)), writes=(ITEMS,),
                     inputs=lambda ctx: ["corpus", sha256_file(ctx.corpus)], unkeyed=("strict",))


def _queries(ctx: Context) -> None:
    c = ctx.config
    queries = write_queries(ctx.client, ctx.prompts, _first_items(ctx), ctx.run.brief(), c.query_formats, c.max_query_items, c.seed)
    ctx.run.write_queries(queries)
    if not queries:
        raise UserError("the LLM produced no valid query — rerun with another seed or a stronger --llm (replies are cached)")


QUERIES_STAGE = Stage("queries", _queries, writes=(QUERIES,), reads=(BRIEF, ITEMS), config=(*LLM_FIELDS, "seed", "query_formats", "max_query_items"),
                      prompts=("queries",), version=QUERIES_VERSION)


def _embed_items(ctx: Context) -> None:
    """The items' embeddings; with a corpus, shared through the run's cache (the parent's, under `retable index`)
    with `retable eval` and `retable index` on the same file."""
    from retable.encoder.cache import embed_items

    n = ctx.run.count(ITEMS)
    cache = (ctx.parent or ctx.run).corpus_cache(ctx.corpus, ctx.encoder.identity()) if ctx.corpus is not None else None
    embed_items(ctx.encoder, lambda: [it.encode_text() for it in _first_items(ctx)], n, cache, ctx.run.path(ITEM_EMB))


EMBED_ITEMS = Stage("embed_items", _embed_items, writes=(ITEM_EMB,), reads=(ITEMS,), config=("encoder", "encoder_backend"))
EMBED_QUERIES = Stage("embed_queries", lambda ctx: ctx.run.write_query_emb(ctx.encoder.encode([q.text for q in ctx.run.first_queries()])),
                      writes=(QUERY_EMB,), reads=(QUERIES,), config=("encoder", "encoder_backend"))


def _no_llm_pairs(ctx: Context) -> None:
    """`retable index`: the real items have no LLM queries; the later stages read empty pair files."""
    ctx.run.write_no_pairs(ctx.encoder.dim)


NO_LLM_PAIRS = Stage("no_llm_pairs", _no_llm_pairs, writes=(QUERIES, QUERY_EMB, KEPT, DROPPED), config=("encoder", "encoder_backend"))


def _rounds(ctx: Context) -> None:
    items, queries = _first_items(ctx), ctx.run.first_queries()
    # the first round's rows only: round files on disk are an earlier (perhaps killed) attempt's, about to be rewritten
    g = Generated(list(items), list(queries), ctx.run.first_item_emb(), ctx.run.first_query_emb(),
                  search=ctx.executor.searcher(ctx.config.ann_threshold))
    history = agent_rounds(g, client=ctx.client, prompts=ctx.prompts, encoder=ctx.encoder, description=ctx.description, brief=ctx.run.brief(),
                           config=ctx.config, log=ctx.log)
    ctx.run.write_filtered(g.kept, g.dropped, history, g.items[len(items):], g.queries[len(queries):], g.item_emb[len(items):],
                           g.query_emb[len(queries):])


ROUNDS_STAGE = Stage(
    "rounds", _rounds, writes=(KEPT, DROPPED, *ROUND_FILES), reads=(BRIEF, ITEMS, QUERIES, ITEM_EMB, QUERY_EMB), version=ROUNDS_VERSION,
    config=(*LLM_FIELDS, "encoder", "encoder_backend", "seed", "query_formats", "rounds", "min_pairs_per_subtopic", "min_format_pass", "round_items",
            "round_queries",
            "budget_tokens", "filter_top_k", "ann_threshold", "audit.domain_seed_share", "audit.domain_ratio"),
    prompts=("items", "queries"), inputs=_description)


def _pseudo(ctx: Context) -> None:
    queries = pseudo_queries(ctx.run.items(), ctx.config.seed, tuple(ctx.config.pseudo_formats))
    ctx.log(f"pseudo: {len(queries)} LLM-free queries for {len(ctx.run.items())} items")
    ctx.run.write_pseudo(queries, ctx.encoder.encode([q.text for q in queries], progress=len(queries) > 2000))


PSEUDO_STAGE = Stage("pseudo", _pseudo, writes=(PSEUDO, PSEUDO_EMB), reads=(ITEMS, ROUND_ITEMS),
                     config=("seed", "encoder", "encoder_backend", "pseudo_formats"))


def export_rows(items: list[Item], queries: list[Query], kept: list[Pair]) -> list[dict]:
    """The kept pairs as rows whose first two fields, query and positive, are what sentence-transformers'
    MultipleNegativesRankingLoss trains on; the rest (format, ids, rank, persona) is for people."""
    text = {it.id: it.encode_text() for it in items}
    persona = {q.id: q.persona for q in queries}
    return [{"query": p.query, "positive": text[p.item_id], "format": p.format, "item_id": p.item_id, "query_id": p.query_id,
             "rank": p.rank, "persona": persona.get(p.query_id)} for p in kept]


EXPORT = Stage("export", lambda ctx: ctx.run.write_generated(export_rows(ctx.run.items(), ctx.run.queries(), ctx.run.kept())),
               writes=(GENERATED,), reads=(ITEMS, QUERIES, KEPT, ROUND_ITEMS, ROUND_QUERIES))
