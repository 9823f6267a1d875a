"""The spine: stages declare their contracts and the declarations hold — every setting keys some stage
(or is listed as not keying any, with the reason), every file a run holds is some stage's declared
output, only runfiles.py names run files, and agent/ (generation) and evals/ (measurement) never import
each other."""

import ast
from pathlib import Path

import pytest

from retable import runfiles
from retable.config import RunConfig
from retable.commands.stages import NOT_KEYED, adapt_stages, generate_stages, index_stages
from retable.stage import DeclaredConfig, Stage, check_stages, config_value

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


def test_every_command_list_passes_the_runners_check():
    from retable.commands.run import BY_INDEX

    config = RunConfig()
    for corpus in (True, False):
        check_stages(adapt_stages(corpus), config, frozenset({runfiles.DESCRIPTION}) | BY_INDEX)
        check_stages(generate_stages(corpus), config, frozenset({runfiles.DESCRIPTION}))
    for keep in (True, False):
        check_stages(index_stages(keep), config, frozenset(runfiles.ROUND_FILES))


def test_the_runner_refuses_a_stage_that_reads_before_a_write_or_declares_a_missing_field():
    late = Stage("late", lambda ctx: None, writes=("b.json",), reads=("a.json",))
    with pytest.raises(RuntimeError, match=r"'late' reads \['a.json'\] before any stage writes them"):
        check_stages([late, Stage("early", lambda ctx: None, writes=("a.json",))], RunConfig())
    check_stages([Stage("early", lambda ctx: None, writes=("a.json",)), late], RunConfig())
    with pytest.raises(RuntimeError, match="declares config field 'audit.no_such'"):
        check_stages([Stage("typo", lambda ctx: None, writes=(), config=("audit.no_such",))], RunConfig())


def test_a_stage_sees_only_the_config_fields_it_declares():
    stage = Stage("s", lambda ctx: None, writes=(), config=("seed", "audit.domain_ratio"), unkeyed=("strict",))
    view = DeclaredConfig(RunConfig(seed=7), stage)
    assert (view.seed, view.strict, view.audit.domain_ratio) == (7, RunConfig().strict, RunConfig().audit.domain_ratio)
    with pytest.raises(AttributeError, match="stage 's' reads config.epochs without declaring it"):
        view.epochs


def test_unkeyed_reads_are_settings_that_key_no_stage():
    every = [s for c in (True, False) for s in adapt_stages(c) + generate_stages(c)] + index_stages(True) + index_stages(False)
    assert {f for s in every for f in s.unkeyed} <= set(NOT_KEYED)


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
    own = {"frozen.py": {"config.json"},  # a sentence-transformers model folder's file
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
