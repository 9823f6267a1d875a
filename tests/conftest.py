import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import Responder  # noqa: E402

from retable.llm.fake import FakeLLM  # noqa: E402


@pytest.fixture
def fake_llm() -> FakeLLM:
    return FakeLLM(Responder())


@pytest.fixture(scope="session")
def encoder():
    """The packaged all-MiniLM-L6-v2, loaded once per test session (no network)."""
    from retable.encoder.frozen import Encoder

    return Encoder("all-MiniLM-L6-v2")


DESCRIPTION = "Biomedical research abstracts. Users type short scientific claims and want the supporting abstracts."


# 96 fake items, ~120 kept pairs. The fake items are one template that differs in a number and three
# words, so their pseudo-queries (title, lead, spans) mostly name the template: tuned on them the table
# loses held-out MRR on the fake LLM queries, and the audit says so (amber). The audit's tests need a
# clean run to plant faults into, so this one tunes on the LLM pairs alone.
AUDIT_CONFIG = dict(n_subtopics=6, items_per_subtopic=16, epochs=8, patience=3, pseudo_formats=[])


@pytest.fixture(scope="session")
def finished_audit_run(tmp_path_factory):
    """One finished run on the fake LLM, large enough for the audit's checks to judge (shared, read-only)."""
    from retable.commands.run import run_adapt
    from retable.config import RunConfig

    run_dir = tmp_path_factory.mktemp("audit-run")
    run_adapt(DESCRIPTION, run_dir, RunConfig(**AUDIT_CONFIG), FakeLLM(Responder()), log=lambda m: None)
    return run_dir
