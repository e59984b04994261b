"""The guard: what a risk tier means for a plan, as data.

none and low run; medium runs and shows the change (or asks, when the
workspace says ``confirm_medium``); high asks for an explicit confirmation of
the exact plan; critical is refused unless the workspace allows it. A plan
with several steps takes the strictest verdict of its steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .catalog import Tier
from .config import GuardSettings

__all__ = ["CRITICAL_RULE", "Guard", "Verdict"]

CRITICAL_RULE = "guard-critical"


class Verdict(StrEnum):
    RUN = "run"
    SHOW = "run_and_show"
    CONFIRM = "confirm"
    REFUSE = "refuse"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


@dataclass(frozen=True)
class Guard:
    settings: GuardSettings

    def verdict(self, tier: Tier) -> Verdict:
        if tier is Tier.CRITICAL:
            return Verdict.CONFIRM if self.settings.allow_critical else Verdict.REFUSE
        if tier is Tier.HIGH:
            return Verdict.CONFIRM
        if tier is Tier.MEDIUM:
            return Verdict.CONFIRM if self.settings.confirm_medium else Verdict.SHOW
        return Verdict.RUN

    def plan_verdict(self, tiers: Iterable[Tier]) -> Verdict:
        return max((self.verdict(t) for t in tiers), key=lambda v: v.rank, default=Verdict.RUN)

    @staticmethod
    def refusal(action: str) -> str:
        return (
            f"{action} is a critical action (it deletes or cannot be taken back); "
            "this workspace does not let anyone run it through sayso"
        )
