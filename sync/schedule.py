"""When a source runs next: its cron `schedule`, else its `every` interval, else only on demand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from inlet.connectors.base import SourceConfig, parse_duration


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
        return max(
            now, datetime.fromtimestamp(last_finished, timezone.utc) + timedelta(seconds=parse_duration(source.every))
        )
    return None
