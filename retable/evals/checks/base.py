"""What every audit check shares: the finding it raises (red, amber or green, with the evidence and the
threshold it was held against), the band that turns a number into a level, and the declaration each
check file makes — `Check`, with its planted fault (`Fault`) where it has one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from pydantic import BaseModel, Field

Level = Literal["red", "amber", "green"]


class Finding(BaseModel):
    level: Level
    check: str = Field(description="which check raised it, e.g. format_regression")
    title: str
    evidence: str = Field(description="the measured numbers behind it")
    threshold: str = Field(description="the threshold it was held against, and its config name")


def band(value: float, red: float, amber: float, *, low_is_bad: bool) -> str:
    if low_is_bad:
        return "red" if value < red else "amber" if value < amber else "green"
    return "red" if value > red else "amber" if value > amber else "green"


@dataclass(frozen=True)
class Fault:
    """A fault planted into a copy of a finished run (tests/planted.py, benchmarks/planted_faults.py): the check
    must raise amber or red on it, and the clean copy no red. `data` faults are planted before the teacher and
    the table are redone — `plant(run, rng, foreign)`, then the stages named in `redo` — `adapter` faults into
    the tuned adapter: `plant(run, seed)`."""

    name: str
    plant: Callable[..., None]
    into: Literal["data", "adapter"] = "data"
    redo: tuple[str, ...] = ()  # stages redone after a data fault, before the teacher labels it
    config: Callable[[object], dict] | None = None  # settings the whole planted copy runs with: config -> update
    tune_with: Callable[[object], dict] | None = None  # settings only the re-tuning runs with: run folder -> update


@dataclass(frozen=True)
class Check:
    """One audit check: its findings from audit.json and the thresholds (`judge(audit, thresholds)`), and, when
    it measures something of its own, that evidence — a field of audit.json (named after the check unless
    `evidence_field` says otherwise), of model `evidence`, filled by `measure(ctx, data)` (data: audit_build.RunData)."""

    name: str
    judge: Callable[..., list[Finding]]
    evidence: type[BaseModel] | None = None
    measure: Callable[..., BaseModel | None] | None = None
    fault: Fault | None = None
    evidence_field: str | None = None  # the audit.json field, when it is not the check's name

    @property
    def field(self) -> str:
        return self.evidence_field or self.name
