"""When a source runs next: its cron `schedule`, else its `every` interval, else only on demand.

An interval counts from the end of the source's last run, as recorded, but never from a time in
this host's future (`counted_from`: from now then, instead of waiting for that time). A run
recorded more than `FUTURE_SLACK` ahead was timed by another clock (a host whose clock ran ahead
under an inlet that kept each host's own time, or this host's clock since set back): `ahead` says
by how much, `inlet status` shows it, and the daemon does not take such a run as a recent one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from inlet.connectors.base import SourceConfig, parse_duration

FUTURE_SLACK = 60.0  # seconds a recorded time may lie in this host's future (clocks a little apart)


def ahead(recorded: float | None, now: float) -> float | None:
    """How far `recorded` lies in this host's future (`now`), when more than `FUTURE_SLACK`; else None."""
    if recorded is None or recorded - now <= FUTURE_SLACK:
        return None
    return recorded - now


def counted_from(finished: float, now: float) -> float:
    """Where an interval schedule counts from after a run that ended at `finished`: no later than now."""
    return min(finished, now)


def trigger(source: SourceConfig, jitter: float | None = None, start_date: datetime | None = None) -> Any | None:
    """The APScheduler trigger for a source, or None when it has no schedule.

    `start_date` (interval sources only) is the first fire time; the default is one interval from now.
    """
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if source.schedule:
        cron = CronTrigger.from_crontab(source.schedule, timezone=timezone.utc)
        cron.jitter = jitter  # from_crontab() takes no jitter argument
        return cron
    if source.every:
        return IntervalTrigger(
            seconds=parse_duration(source.every), timezone=timezone.utc, jitter=jitter, start_date=start_date
        )
    return None


def next_run(source: SourceConfig, last_finished: float | None, now: datetime | None = None) -> datetime | None:
    """The next due time, as the daemon would schedule it."""
    now = now or datetime.now(timezone.utc)
    if source.schedule:
        return trigger(source).get_next_fire_time(None, now)  # type: ignore[union-attr]
    if source.every:
        if last_finished is None:
            return now
        start = datetime.fromtimestamp(counted_from(last_finished, now.timestamp()), timezone.utc)
        return max(now, start + timedelta(seconds=parse_duration(source.every)))
    return None
