"""The one progress drawing behind backfill, sync, demo, migrate and reindex (inlet/progress.py)."""

from __future__ import annotations

import io

from inlet.progress import count_display, progress_display
from inlet.sync.engine import RunProgress
from inlet.storage import RunRecord


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does when a person watches."""

    def isatty(self) -> bool:
        return True


def test_runs_draw_a_row_per_source_with_the_connectors_total() -> None:
    screen = Terminal()
    with progress_display(True, screen) as update:
        assert update is not None
        run = RunRecord(id=1, source="team-drive", kind="backfill", started_at=0.0, upserted=7, embedded=1234)
        update(run, RunProgress(seen=9, done=8, total=20, unit="files"))
        update(RunRecord(id=2, source="mail", kind="backfill", started_at=0.0), RunProgress(seen=3))
    drawn = screen.getvalue()
    assert "team-drive" in drawn and "8/20 files · 9 items · 7 indexed · 1,234 chunks embedded" in drawn
    assert "mail" in drawn and "3 items · 0 indexed" in drawn


def test_copies_and_reembeddings_draw_done_of_total_in_their_unit() -> None:
    screen = Terminal()
    with count_display(True, "chunks", screen) as update:
        assert update is not None
        update("re-embedding", 1500, 6000)
    assert "re-embedding" in screen.getvalue() and "1,500/6,000 chunks" in screen.getvalue()


def test_nothing_is_drawn_off_a_terminal_or_with_json() -> None:
    with progress_display(True, io.StringIO()) as runs, count_display(False, "documents", Terminal()) as copies:
        assert runs is None and copies is None


def test_the_time_columns_read_as_a_sentence() -> None:
    """Issue 28.9: the columns read `0:00:13 left 0:00:00`."""
    from inlet.progress import clock, times

    assert times(13.4, None, False) == "0:13 elapsed"
    assert times(13.4, 42.0, False) == "0:13 elapsed, about 0:42 left"
    assert times(3725, 0, True) == "1:02:05 elapsed, done"
    assert clock(59.9) == "0:59" and clock(3600) == "1:00:00"
    screen = Terminal()
    with count_display(True, "documents", screen) as update:
        assert update is not None
        update("copy", 10, 10)
    drawn = screen.getvalue()
    assert "elapsed, done" in drawn and " left 0:" not in drawn and "left" not in drawn.split("done")[-1]
