"""The spine: stages declare their contracts and the declarations hold — every setting keys some stage
(or is listed as not keying any, with the reason), every file a run holds is some stage's declared
output, only runfiles.py names run files, and agent/ (generation) and evals/ (measurement) never import
each other."""

import ast
from pathlib import Path

import pytest

from retable import runfiles
from retable.config import RunConfig
from retable.pipeline import NOT_KEYED, adapt_stages, generate_stages
from retable.stage import config_value

PACKAGE = Path(__file__).resolve().parents[1] / "retable"
ALL_STAGES = {id(s): s for corpus in (True, False) for s in adapt_stages(corpus) + generate_stages(corpus)}.values()
RUN_INFRA = {runfiles.CONFIG, runfiles.DESCRIPTION, runfiles.MANIFEST, runfiles.PROMPTS_DIR, runfiles.ENDPOINTS, runfiles.LOCK,
             runfiles.ADAPTER + runfiles.LOCK_SUFFIX}


def test_every_setting_keys_a_stage_or_is_listed_as_keying_none():
    declared = {f.split(".")[0] for s in ALL_STAGES for f in s.config}
    for field in RunConfig.model_fields:
        assert (field in declared) != (field in NOT_KEYED), f"{field}: declare it in the stages that read it, or in NOT_KEYED with the reason"
    config = RunConfig()
    for stage in ALL_STAGES:
        for name in stage.config:
            config_value(config, name)  # a typo in a declaration fails here


def test_stage_names_are_unique_per_pipeline_and_outputs_have_one_writer():
    for corpus in (True, False):
        stages = adapt_stages(corpus)
        assert len({s.name for s in stages}) == len(stages)
        writes = [w for s in stages for w in s.writes]
        assert len(set(writes)) == len(writes)


def test_a_stage_reads_only_what_an_earlier_stage_writes():
    from retable.adapters.indexing import INDEX_RECORD, index_stages

    for keep in (True, False):  # `retable index`'s own run, in RUN/indexed/
        written = set()
        for stage in index_stages(runfiles.RunFolder(Path(".")), keep):
            unread = set(stage.reads) - written - set(runfiles.ROUND_FILES)  # no agent rounds over real items: absent, keyed as absent
            assert not unread, f"index: {stage.name} reads {unread} before any stage writes them"
            written |= set(stage.writes)
    by_index = {f"{runfiles.INDEXED}/{w}" for w in written | {INDEX_RECORD}}  # the audit reads them once `retable index` ran
    for corpus in (True, False):
        written = set()
        for stage in adapt_stages(corpus):
            unread = set(stage.reads) - written - {runfiles.DESCRIPTION} - by_index
            assert not unread, f"{stage.name} reads {unread} before any stage writes them"
            written |= set(stage.writes)


def test_every_file_of_a_finished_run_is_a_declared_output(finished_audit_run):
    declared = {w for s in adapt_stages(False) for w in s.writes}
    optional = {w for s in adapt_stages(False) for w in s.optional}
    present = {str(p.relative_to(finished_audit_run)) for p in finished_audit_run.rglob("*") if p.is_file()}
    stray = {p for p in present - declared - RUN_INFRA if not p.startswith(runfiles.LLM_CACHE)}
    assert not stray, f"files no stage declares: {stray}"
    assert declared - optional <= present


def _modules(folder: Path):
    for path in sorted(folder.rglob("*.py")) if folder.is_dir() else [folder]:
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        yield path, names, tree


@pytest.mark.parametrize("package, forbidden", [("agent", "retable.evals"), ("evals", "retable.agent")])
def test_agent_and_evals_never_import_each_other(package, forbidden):
    for path, names, _ in _modules(PACKAGE / package):
        assert not any(n == forbidden or n.startswith(forbidden + ".") for n in names), f"{path.name} imports {forbidden}"


def test_config_imports_no_evals_code():
    for module in ("config.py", "thresholds.py"):
        _, imported, _ = next(_modules(PACKAGE / module))
        assert not any(m.startswith(("retable.evals", "retable.agent")) for m in imported), module


def test_only_runfiles_names_run_files():
    names = {v for k, v in vars(runfiles).items() if k.isupper() and isinstance(v, str) and "." in v} | set(runfiles.ADAPTER_FILES)
    own = {"encoder.py": {"config.json"},  # a sentence-transformers model folder's file
           "beir.py": {"queries.jsonl"}}  # a BEIR collection's file
    for path, _, tree in _modules(PACKAGE):
        if path.name == "runfiles.py":
            continue
        literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)} - own.get(path.name, set())
        assert not (literals & names), f"{path.relative_to(PACKAGE)} names run files {literals & names}"


def test_no_function_is_longer_than_a_screen():
    long = [f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, _, tree in _modules(PACKAGE) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, long
