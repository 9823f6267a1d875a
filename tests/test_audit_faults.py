"""Planted faults: each one, planted into a clean fake run and audited again, must raise a red or
amber finding from the check meant to catch it; the clean copy must raise no red finding."""

from pathlib import Path

import pytest
from conftest import AUDIT_CONFIG
from fakes import Responder

from retable.llm import LLMClient, UsageLog
from retable.llm.cache import CallCache
from retable.llm.fake import FakeLLM
from retable.prompts import Prompts
from retable.config import RunConfig
from planted import EXPECTED, FAULTS, plant
from retable.records import Item

DISHES = "lentil soup,lamb stew,apple pie,garlic shrimp,mushroom risotto,banana bread,chicken curry,pea salad".split(",")
STEPS = "simmer,bake,fry,roast,grill,steam".split(",")


@pytest.fixture(scope="module")
def foreign(encoder):
    """Recipes: the off-domain items planted into a biomedical run."""
    items = [Item(id=f"f{i}", title=f"{DISHES[i % 8]} recipe", text=f"Recipe {i}: {STEPS[i % 6]} the {DISHES[(i * 3) % 8]} for {10 + i} minutes, "
                                                                    "then add salt and serve.")
             for i in range(40)]
    return items, encoder.encode([it.encode_text() for it in items])


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    cache = CallCache(tmp_path_factory.mktemp("judge") / "cache.sqlite")
    return LLMClient(FakeLLM(Responder()), cache, temperature=0.7, max_tokens=384, max_retries=2, usage=UsageLog())


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("fault", FAULTS)
def test_planted_fault_is_flagged_and_clean_run_is_not_red(fault, seed, finished_audit_run, encoder, foreign, client, tmp_path):
    audit = plant(finished_audit_run, tmp_path / fault, fault, RunConfig(**AUDIT_CONFIG), encoder, seed=seed, client=client,
                  prompts=Prompts(), foreign=foreign)
    levels = {f.check: f.level for f in audit.findings if f.level != "green"}
    if fault == "clean":
        assert "red" not in levels.values(), audit.findings
    else:
        assert levels.get(EXPECTED[fault]) in ("red", "amber"), [f for f in audit.findings if f.level != "green"]
        assert audit.verdict in ("red", "amber")


def test_unknown_fault_is_refused(finished_audit_run, encoder, tmp_path):
    with pytest.raises(ValueError, match="unknown fault"):
        plant(finished_audit_run, tmp_path / "x", "gremlins", RunConfig(), encoder, seed=1)


def test_the_source_run_is_left_untouched(finished_audit_run, encoder, foreign, tmp_path):
    before = {p: p.read_bytes() for p in Path(finished_audit_run).rglob("*") if p.is_file() and "cache" not in p.name}
    plant(finished_audit_run, tmp_path / "s", "shuffled_pairs", RunConfig(**AUDIT_CONFIG), encoder, seed=1)
    after = {p: p.read_bytes() for p in before}
    assert before == after
