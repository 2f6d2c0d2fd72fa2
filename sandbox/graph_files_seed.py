"""Sites, libraries and OneDrives for the emulated Graph files API: a sample tenant and generated ones.

The sample exercises what a files connector meets: two sites (one with two libraries), OneDrives,
group-connected sites whose inherited Owners and Members site groups stand for their Microsoft 365
group's owners and members (with a nested group), a folder that breaks
inheritance, organization and anonymous sharing links, a file shared with one person, PDF, DOCX,
PPTX, XLSX, HTML, Markdown and a PNG the connector does not read.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from .documents import make_docx, make_pdf, make_png, make_pptx, make_xlsx
from .graph_files_state import FilesState, Perm, files_state

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_BASE = dt.datetime(2024, 2, 5, 9, 0, tzinfo=dt.timezone.utc)
_ids = itertools.count(1)


def perm(roles: str = "read", **who: Any) -> Perm:
    return Perm(f"perm{next(_ids):04d}", [roles], **who)


def _people(ws: Any) -> list[str]:
    people = [u.email for u in ws.users.values() if not u.is_bot and not u.deleted and u.domain == ws.domain]
    for name in ("alice", "bob", "carol", "dave")[: max(0, 4 - len(people))]:
        people.append(ws.add_user(f"{name}@{ws.domain}", name, name.title()).email)
    return people


def seed_files(ws: Any) -> None:
    state: FilesState = files_state(ws)
    with ws.lock:
        a, b, c, d = _people(ws)[:4]
        finance_people = [u.email for u in ws.users.values() if u.domain != ws.domain][:2] or [d]
        state.domains = [ws.domain, "sandbox.onmicrosoft.com"]
        platform = state.add_group("Platform Team", [c])
        engineering = state.add_group("Engineering", [a, b, platform.id], owners=[a])
        finance = state.add_group("Finance", finance_people, owners=finance_people[:1])

        eng = state.add_site("/sites/Engineering", "Engineering", group=engineering.id)
        docs = state.add_drive("Documents", eng)
        specs = state.add_drive("Specs", eng)
        for drive in (docs, specs):
            state.items[drive.root_id].perms = [
                perm("owner", site_group="Engineering Owners"),
                perm("write", site_group="Engineering Members"),
            ]
        at = iter(_BASE + dt.timedelta(hours=6 * n) for n in range(100))

        def add(drive_id: str, parent: str | None, name: str, data: bytes, mime: str, **kw: Any) -> str:
            return state.add_item(
                drive_id, parent, name, data, mime, author=kw.pop("author", a), when=next(at), **kw
            ).id

        design = state.add_item(docs.id, None, "Design", folder=True, author=a, when=next(at)).id
        add(
            docs.id,
            design,
            "Search design.docx",
            make_docx(
                "Search service design",
                [
                    "Serve permission-aware retrieval with a p95 latency under 300 ms.",
                    "Chroma holds the vectors; ACL tokens are filtered at query time.",
                ],
            ),
            DOCX,
        )
        add(
            docs.id,
            design,
            "Architecture.pdf",
            make_pdf(
                "Ingestion architecture",
                ["One worker per source, checkpointed after every page; a crash loses nothing."],
            ),
            PDF,
        )
        runbooks = state.add_item(docs.id, None, "Runbooks", folder=True, author=b, when=next(at)).id
        add(
            docs.id,
            runbooks,
            "oncall.md",
            b"# On-call runbook\n\nPage the platform team when the indexer "
            b"lag exceeds ten minutes. Restart with `inlet daemon`.\n",
            "text/markdown",
            author=b,
            perms=[perm(link="organization")],
        )
        add(
            docs.id,
            None,
            "Budget 2024.xlsx",
            make_xlsx(
                "Engineering budget 2024",
                {
                    "Summary": [["Team", "Headcount", "Budget"], ["Search", 6, 1200000], ["Platform", 4, 800000]],
                    "Notes": [["Hardware refresh planned for the third quarter"]],
                },
            ),
            XLSX,
        )
        private = state.add_item(
            docs.id,
            None,
            "Leadership",
            folder=True,
            author=a,
            when=next(at),
            perms=[perm("owner", user=a)],
            unique=True,
        ).id
        add(
            docs.id,
            private,
            "Reorg plan.txt",
            b"Reorg plan: merge the search and platform teams in June.",
            "text/plain",
        )
        add(docs.id, None, "logo.png", make_png(), "image/png")
        add(
            specs.id,
            None,
            "API spec.html",
            b"<html><head><title>Search API specification</title></head><body>"
            b"<h1>Search API</h1><p>POST /v1/search takes a query and returns ranked passages.</p></body></html>",
            "text/html",
        )
        add(
            specs.id,
            None,
            "Roadmap.pptx",
            make_pptx(
                "Roadmap 2024", [("Q1", "Hybrid ranking with BM25 and vectors"), ("Q2", "Microsoft 365 connectors")]
            ),
            PPTX,
            perms=[perm(group=platform.id)],
        )  # an Entra group granted directly

        fin = state.add_site("/sites/Finance", "Finance", group=finance.id)
        books = state.add_drive("Documents", fin)
        state.items[books.root_id].perms = [
            perm("owner", site_group="Finance Owners"),
            perm("write", site_group="Finance Members"),
        ]
        add(
            books.id,
            None,
            "Forecast.xlsx",
            make_xlsx("Revenue forecast", {"Forecast": [["Quarter", "Revenue"], ["Q1", 4100000], ["Q2", 4550000]]}),
            XLSX,
            author=finance_people[0],
        )
        add(
            books.id,
            None,
            "Expense FAQ.md",
            b"# Expense FAQ\n\nReceipts over 25 dollars must be attached to every expense claim.\n",
            "text/markdown",
            author=finance_people[0],
            perms=[perm(link="anonymous")],
        )

        mine = state.add_drive("OneDrive", owner=a)
        state.items[mine.root_id].perms = [perm("owner", user=a)]
        add(mine.id, None, "Notes.txt", b"Personal notes: prepare the quarterly search quality review.", "text/plain")
        add(
            mine.id,
            None,
            "Offsite plan.docx",
            make_docx("Team offsite plan", ["The offsite takes place in Lisbon; travel is booked through the portal."]),
            DOCX,
            perms=[perm(user=b)],
        )


_WORDS = (
    "search index vector permission drive library site folder budget roadmap design review "
    "latency quota retention policy contract vendor hiring launch"
).split()


def seed_files_generated(ws: Any, files: int) -> None:
    """`files` Markdown files in folders of one site library, for benchmarks."""
    state = files_state(ws)
    rng = ws.rng
    with ws.lock:
        people = _people(ws)
        state.domains = [ws.domain]
        group = state.add_group("Everyone", people[:10])
        site = state.add_site("/sites/Bench", "Bench", group=group.id)
        drive = state.add_drive("Documents", site)
        state.items[drive.root_id].perms = [perm("write", site_group="Bench Members")]
        folders = [state.add_item(drive.id, None, f"Folder {n}", folder=True, when=_BASE).id for n in range(10)]
        for n in range(files):
            text = (
                "# "
                + " ".join(rng.choice(_WORDS) for _ in range(4)).capitalize()
                + "\n\n"
                + " ".join(rng.choice(_WORDS) for _ in range(80))
                + ".\n"
            )
            state.add_item(
                drive.id,
                folders[n % len(folders)],
                f"note {n:05d}.md",
                text.encode(),
                "text/markdown",
                author=people[n % len(people)],
                when=_BASE + dt.timedelta(minutes=n),
            )
