"""What a test does when something it needs is missing: locally a skip that says why; in CI (CI=true,
as .ci/run runs) a failure, so a missing install step cannot pass as a skip."""

import os

import pytest

IN_CI = os.environ.get("CI") == "true"


def missing(reason: str, *, module: bool = False) -> None:
    if IN_CI:
        pytest.fail(f"{reason} — CI must have it: the project's install is missing a step", pytrace=False)
    pytest.skip(reason, allow_module_level=module)
