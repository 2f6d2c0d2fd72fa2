"""Teams for the emulated Graph: a sample with every channel kind, and generated threads for benchmarks.

The sample has two teams; Engineering holds a standard channel with threads that have replies,
mentions, a subject, a shared file and a link, a private channel and a shared channel whose members
differ from the team's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .graph_files_seed import _people
from .graph_teams_state import TeamsState, teams_state

_BASE = dt.datetime(2024, 3, 4, 9, 0, tzinfo=dt.timezone.utc)


def _at(ws: Any, n: int, email: str) -> str:
    user = ws.user_by_email(email)
    return f'<at id="{n}">{user.real_name if user else email}</at>'


def seed_teams(ws: Any) -> None:
    state: TeamsState = teams_state(ws)
    with ws.lock:
        a, b, c, d = _people(ws)[:4]
        at = iter(_BASE + dt.timedelta(minutes=37 * n) for n in range(200))
        eng = state.add_team("Engineering", [a, b, c])
        general = state.add_channel(eng.id, "General")
        root = state.post(
            general.id,
            a,
            "<p>The <b>search latency</b> regression is fixed in release 4.2.</p>",
            subject="Search latency",
            when=next(at),
        )
        state.post(
            general.id,
            b,
            f"<p>Thanks {_at(ws, 0, a)}! Was it the vector cache?</p>",
            root.id,
            when=next(at),
            mentions=[a],
        )
        state.post(
            general.id,
            a,
            '<p>Yes, see the <a href="https://wiki.example.com/cache">cache notes</a> and the attached report.</p>',
            root.id,
            when=next(at),
            files=[
                (
                    "Latency report.docx",
                    "https://sandbox.sharepoint.com/sites/Engineering/Shared%20Documents/Latency%20report.docx",
                )
            ],
        )
        state.post(general.id, c, "<div>Reminder: the design review moves to Thursday at 10:00.</div>", when=next(at))
        incidents = state.add_channel(eng.id, "incident-db")
        root = state.post(
            incidents.id, c, "<p>Database failover started at 02:10; replicas are catching up.</p>", when=next(at)
        )
        state.post(incidents.id, b, "<p>Failover complete, error rate back to normal.</p>", root.id, when=next(at))
        leads = state.add_channel(eng.id, "leadership", "private", [a])
        state.post(leads.id, a, "<p>Headcount plan: two more search engineers next quarter.</p>", when=next(at))
        partners = state.add_channel(eng.id, "partners", "shared", [a, d])
        state.post(
            partners.id, d, "<p>Our integration test suite against your API passes since Monday.</p>", when=next(at)
        )
        support = state.add_team("Support", [b, d])
        desk = state.add_channel(support.id, "General")
        root = state.post(
            desk.id,
            d,
            "<p>Customers report slow exports from the billing page.</p>",
            subject="Slow exports",
            when=next(at),
        )
        state.post(
            desk.id,
            b,
            f"<p>{_at(ws, 0, d)} the export job was throttled; it runs again now.</p>",
            root.id,
            when=next(at),
            mentions=[d],
        )


_WORDS = (
    "deploy release incident latency review search index customer ticket export billing queue "
    "cache database failover design meeting"
).split()


def seed_teams_generated(ws: Any, threads: int) -> None:
    """`threads` threads of one to four messages over four channels of one team, for benchmarks."""
    state = teams_state(ws)
    rng = ws.rng
    with ws.lock:
        people = _people(ws)
        team = state.add_team("Bench", people[:10])
        channels = [state.add_channel(team.id, f"channel-{n}").id for n in range(4)]
        for n in range(threads):
            channel = channels[n % len(channels)]
            when = _BASE + dt.timedelta(minutes=10 * n)
            root = state.post(
                channel,
                people[n % len(people)],
                "<p>" + " ".join(rng.choice(_WORDS) for _ in range(20)) + "</p>",
                when=when,
            )
            for k in range(rng.randint(0, 3)):
                state.post(
                    channel,
                    people[(n + k + 1) % len(people)],
                    "<p>" + " ".join(rng.choice(_WORDS) for _ in range(12)) + "</p>",
                    root.id,
                    when=when + dt.timedelta(minutes=k + 1),
                )
