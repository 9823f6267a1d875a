import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import Responder  # noqa: E402

from retable.agent.llm.fake import FakeLLM  # noqa: E402


@pytest.fixture
def fake_llm() -> FakeLLM:
    return FakeLLM(Responder())


@pytest.fixture(scope="session")
def encoder():
    """The packaged all-MiniLM-L6-v2, loaded once per test session (no network)."""
    from retable.adapters.encoder import Encoder

    return Encoder("all-MiniLM-L6-v2")


DESCRIPTION = "Biomedical research abstracts. Users type short scientific claims and want the supporting abstracts."
