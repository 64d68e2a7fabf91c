"""When a connector syncs: `schedule: {every: 15m}` or `schedule: {cron: "*/15 * * * *"}`."""

from __future__ import annotations

from pydantic import model_validator

from hub.sections.common import Duration, Strict


class Schedule(Strict):
    every: Duration | None = None
    cron: str | None = None
    jitter: Duration | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' (e.g. 15m) or 'cron' (e.g. '*/15 * * * *')")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron must have 5 fields (minute hour day month weekday), got {self.cron!r}")
        return self
