"""``retention:``, how many old run folders a destination keeps (shared.retention applies it).

One type for every entry that delivers dated copies (``datasets[]``, ``exports[]``; a bucket
mirror entry can take it the same way: ``retention: Retention | None = RETENTION_FIELD``).
Absent means keep everything, as offsite always did.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from shared.config.types import Model, between


class Retention(Model):
    daily: Annotated[int, between(1)] = Field(
        description="Keep the newest run folder of each of the N newest days that have one (at least 1)."
    )
    monthly: Annotated[int, between(0)] = Field(
        0, description="Also keep the newest run folder of each of the M newest months that have one."
    )

    def describe(self) -> str:
        """``daily=7, monthly=12``: how log lines and results name the policy."""
        return f"daily={self.daily}, monthly={self.monthly}"


RETENTION_FIELD: Any = Field(
    None,
    description="{daily: N, monthly: M}: prune older run folders at each destination (`offsite prune`, and "
    "daily from the verify sweep), each only once a newer run of the same table (or query export) is in_sync there. "
    "Absent: keep everything.",
)
