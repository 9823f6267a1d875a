from importlib import resources

import pytest

from retable.prompts import TASKS, Prompts
from retable.config import QUERY_FORMATS
from retable.errors import UserError

VARIABLES = {
    "brief": dict(description="Recipes. Users search by dish.", n_subtopics=4),
    "items": dict(description="Recipes.", subtopic="soups", item_kind="recipe", n_items=3, focus=""),
    "queries": dict(formats=list(QUERY_FORMATS), persona_name="cook", persona_intent="a soup", item_text="Leek soup.", counter_examples=[]),
    "judge": dict(query="leek soup", document="Leek soup."),
}


def test_every_shipped_template_is_covered():
    shipped = {p.name[: -len(".jinja")] for p in resources.files("retable.prompts").iterdir() if p.name.endswith(".jinja")}
    assert shipped == set(TASKS) == set(VARIABLES)


@pytest.mark.parametrize("task", TASKS)
def test_every_shipped_template_renders(task):
    messages = Prompts().render(task, **VARIABLES[task])
    roles = [m["role"] for m in messages]
    assert roles in (["system", "user"], ["system", "user", "assistant", "user"])  # optional example turn
    assert all(m["content"] for m in messages)


@pytest.mark.parametrize("task", TASKS)
def test_a_missing_variable_fails_loudly(task):
    with pytest.raises(UserError, match="UndefinedError"):
        Prompts().render(task)


def test_item_text_is_placed_as_delimited_data():
    user = Prompts().render("queries", **VARIABLES["queries"])[-1]["content"]
    assert "<document>Leek soup.</document>" in user


def test_override_folder_replaces_a_template_by_name(tmp_path):
    (tmp_path / "brief.jinja").write_text("{% block system %}S{% endblock %}{% block user %}plan {{ description }}{% endblock %}")
    prompts = Prompts(tmp_path)
    assert prompts.render("brief", description="x", n_subtopics=1)[1]["content"] == "plan x"
    assert "Leek soup." in prompts.render("queries", **VARIABLES["queries"])[-1]["content"]
    assert prompts.source_hash("brief") != Prompts().source_hash("brief")


def test_templates_render_in_the_sandbox(tmp_path):
    (tmp_path / "brief.jinja").write_text("{% block system %}{{ description.__class__.__mro__ }}{% endblock %}{% block user %}u{% endblock %}")
    with pytest.raises(UserError, match="SecurityError: access to attribute '__class__'"):
        Prompts(tmp_path).render("brief", description="x", n_subtopics=1)


def test_missing_override_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        Prompts(tmp_path / "nope")
