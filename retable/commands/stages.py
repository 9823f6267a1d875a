"""Every command's stages, in one place. A stage declares its own contract (retable.stage); a list here
is what a command runs, in order, and `check_stages` holds each list to its contracts before a run."""

from __future__ import annotations

from retable.adapters.stages import CODES_KEPT, CODES_STAGE, TUNE_KEPT, TUNE_STAGE
from retable.agent.stages import (BRIEF_STAGE, CORPUS_ITEMS, EMBED_ITEMS, EMBED_QUERIES, EXPORT, NO_LLM_PAIRS, PSEUDO_STAGE, QUERIES_STAGE,
                                  ROUNDS_STAGE, SYNTHETIC_ITEMS)
from retable.evals.stages import AUDIT_STAGE, JUDGE_STAGE, REPORT_STAGE
from retable.stage import Stage
from retable.teacher.stages import TEACHER_STAGE

# settings that change no stage's output, so they key none (tests/test_stages.py holds every other one to a stage)
NOT_KEYED = {
    "base_url": "the server that answers; LLM replies are cached by model, not by server",
    "endpoints": "the same, for a pool of servers",
    "endpoint_cooldown": "when a failed endpoint is tried again",
    "llm_timeout": "how long a remote request may take",
    "llm_retries": "how often a failed remote request is retried",
    "concurrency": "requests in flight; replies are the same as one at a time",
    "llm_parallel": "how the embedded model schedules its calls; replies are cached under the same keys either way, so a rerun asks nothing",
    "llm_weights": "the same model's weights in another encoding; like llm_parallel it changes numerics, not what is asked, and replies are cached "
                   "under the model's name",
    "executor": "where work runs; Ray and local write the same files (tests/test_executor_ray.py)",
    "hard_negatives": "only the contrastive tables of `retable eval --baselines` mine them; `adapt` tunes on the teacher's candidates",
    "strict": "whether a corpus with empty documents is refused; when it is not refused the items are the same either way",
}


def data_stages(corpus: bool) -> list[Stage]:
    """From the description (and the user's corpus) to the kept pairs."""
    return [BRIEF_STAGE, CORPUS_ITEMS if corpus else SYNTHETIC_ITEMS, QUERIES_STAGE, EMBED_ITEMS, EMBED_QUERIES, ROUNDS_STAGE]


def adapt_stages(corpus: bool) -> list[Stage]:
    """`retable adapt`: the data, the teacher's labels, the codes and the table, then the audit."""
    return [*data_stages(corpus), PSEUDO_STAGE, TEACHER_STAGE, CODES_STAGE, TUNE_STAGE, *audit_stages()]


def generate_stages(corpus: bool) -> list[Stage]:
    """`retable generate`: the data alone, exported as training pairs."""
    return [*data_stages(corpus), EXPORT]


def index_stages(keep_codes: bool) -> list[Stage]:
    """`retable index`: the real items, no LLM pairs, pseudo-queries labelled by the teacher, then codes and table
    (refitted, or the parent's kept). Run in RUN/indexed/, whose parent is the run."""
    head = [CORPUS_ITEMS, EMBED_ITEMS, NO_LLM_PAIRS, PSEUDO_STAGE, TEACHER_STAGE]
    return head + ([CODES_KEPT, TUNE_KEPT] if keep_codes else [CODES_STAGE, TUNE_STAGE])


def audit_stages() -> list[Stage]:
    """`retable audit`, and the tail of `retable adapt`: the judge, the audit and the report."""
    return [JUDGE_STAGE, AUDIT_STAGE, REPORT_STAGE]

