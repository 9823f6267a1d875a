import json

import pytest

from retable.agent.brief import make_brief
from retable.agent.echo import Echo
from retable.llm import LLMClient
from retable.llm.fake import FakeLLM
from retable.prompts import Prompts
from retable.errors import UserError


@pytest.fixture
def query_prompt():
    return Prompts().render("queries", formats=["keyword", "question"], persona_name="reader", persona_intent="evidence",
                            item_text="Statin use and breast cancer survival in a nationwide Finnish cohort.")


def test_echo_flags_the_examples_and_instructions_but_not_the_document(query_prompt):
    echo = Echo(query_prompt)
    assert echo.repeats("garlic shrimp quick dinner")  # the few-shot example
    assert echo.repeats("2 to 5 keywords, not a sentence")  # the instructions
    assert not echo.repeats("statin breast cancer survival")  # words of the document (data) are fine
    assert not echo.repeats("do statins improve breast cancer survival?")


def test_brief_drops_echoes_and_retries_when_nothing_is_left():
    parrot = {"subtopics": ["vegetarian pasta dishes", "baking bread at home"], "item_kinds": ["recipe"], "vocabulary": [],
              "personas": [{"name": "busy parent", "intent": "a fast dinner from what is in the fridge"}]}
    good = {"subtopics": ["statins and cancer", "baking bread at home", "gene editing"], "item_kinds": ["abstract"], "vocabulary": ["cohort"],
            "personas": [{"name": "oncologist", "intent": "trial evidence"}, {"name": "new baker", "intent": "step-by-step help with a first loaf"}]}
    llm = FakeLLM()
    llm.enqueue(json.dumps(parrot), json.dumps(good))
    client = LLMClient(llm, None, temperature=0.5, max_tokens=200, max_retries=1)
    brief = make_brief(client, Prompts(), "Biomedical abstracts.", 4, seed=1)
    assert brief.subtopics == ["statins and cancer", "gene editing"]
    assert [p.name for p in brief.personas] == ["oncologist"]
    assert client.usage.current().calls == 2

    llm.enqueue(*[json.dumps(parrot)] * 6)  # 3 plans (seeds) x 2 tries each, all parroting
    with pytest.raises(UserError, match="no usable domain brief after 6 tries"):
        make_brief(client, Prompts(), "Other domain.", 4, seed=2)
    assert not llm.queue


def test_brief_is_asked_again_while_its_subtopics_are_repeats():
    one = {"subtopics": ["biomedical research", "biomedical research research", "Research, biomedical"], "item_kinds": ["abstract"],
           "vocabulary": [], "personas": [{"name": "oncologist", "intent": "trial evidence"}]}
    more = {"subtopics": ["gene editing", "vaccine trials", "biomedical research"], "item_kinds": ["abstract"], "vocabulary": [],
            "personas": [{"name": "student", "intent": "basics"}]}
    llm = FakeLLM()
    llm.enqueue(json.dumps(one), json.dumps(more))
    brief = make_brief(LLMClient(llm, None, temperature=0.5, max_tokens=200, max_retries=0), Prompts(), "Biomedical abstracts.", 4, seed=1)
    assert brief.subtopics == ["biomedical research", "gene editing", "vaccine trials"]
    assert [p.name for p in brief.personas] == ["oncologist", "student"] and not llm.queue


def test_leaks_catch_a_copied_example_mixed_with_the_real_topic():
    from retable.prompts import Prompts

    messages = Prompts().render("queries", formats=["keyword", "long"], persona_name="engineer", persona_intent="papers",
                                item_text="Microwave amplifiers built from gallium arsenide transistors reach 40 GHz.")
    echo = Echo(messages)
    assert echo.leaks("I am looking for a quick microwave recipe with garlic and lemon")
    assert echo.leaks("garlic shrimp microwave")
    assert not echo.leaks("gallium arsenide microwave amplifiers at 40 GHz")
    assert not echo.leaks("I am looking for transistor amplifiers that work above 30 GHz")
