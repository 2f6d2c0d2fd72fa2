"""Content for the emulated Drive: a realistic sample drive and deterministic generated ones.

Binary formats are real files (PDF written by hand to the spec's minimum, DOCX with python-docx,
PPTX with python-pptx), so the connector's extractors read them as they would read Google's.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import drive_state as ds
from .documents import make_docx, make_pdf, make_png, make_pptx, make_zip

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_BASE = datetime(2024, 1, 8, 9, 0, tzinfo=timezone.utc).timestamp()
_DAY = 86400.0


def markdown_to_plain(text: str) -> str:
    """What Docs' text/plain export looks like: no Markdown marks."""
    text = re.sub(r"^#{1,6}\s*", "", text, flags=re.MULTILINE)
    text = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: m[1] or m[2], text)
    return re.sub(r"^\s*[-*]\s+", "* ", text, flags=re.MULTILINE)


def markdown_to_html(title: str, text: str) -> str:
    body = []
    for block in text.split("\n\n"):
        heading = re.match(r"^(#{1,6})\s+(.*)", block)
        level = len(heading[1]) if heading else 0
        body.append(f"<h{level}>{heading[2]}</h{level}>" if heading else f"<p>{block}</p>")
    return f"<html><head><title>{title}</title></head><body>{''.join(body)}</body></html>"


# --- the sample drive -------------------------------------------------------------------------
def _people(ws: Any) -> list[str]:
    """Emails of a few real users of the workspace (three sample people are added if it has none)."""
    people = [u.email for u in ws.users.values() if not u.is_bot and not u.deleted and u.domain == ws.domain]
    if len(people) < 3:
        for name, real in (("alice", "Alice Liddell"), ("bob", "Bob Marley"), ("carol", "Carol Danvers")):
            people.append(ws.add_user(f"{name}@{ws.domain}", name, real).email)
    return people


SAMPLE_DOCS = {
    "Search service design": (
        "# Search service design\n\n## Goals\n\nServe permission-aware retrieval over Slack, Drive and "
        "mail with p95 latency under **300 ms** for ten million chunks.\n\n## Architecture\n\n"
        "- An ingestion worker per source, checkpointed after every page.\n- Chroma as the vector "
        "store; one collection per tenant.\n- ACL tokens stored with every chunk and filtered at "
        "query time.\n\n## Open questions\n\nShould we re-rank with a cross-encoder? Owner: search team."
    ),
    "Onboarding guide": (
        "# Onboarding guide\n\nWelcome to Sandbox Inc! Your first week:\n\n- Get a laptop from IT on "
        "day one.\n- Join #general and #random in Slack.\n- Read the security policy and the expense "
        "policy.\n\n## Who to ask\n\nYour buddy is listed in the HR portal. The VPN setup is in the "
        "IT runbook."
    ),
    "1:1 notes (private)": (
        "# 1:1 notes\n\nCareer goals: lead the migration to the new billing system by Q4. Feedback: "
        "great incident handling during the March outage."
    ),
}


def seed_sample(ws: Any, path: Path | None = None) -> None:
    """A small realistic drive: folders, Docs/Sheets/Slides, PDF/DOCX/PPTX, text, an image, a zip."""
    with ws.lock:
        if ds.state(ws).files:
            return
        a, b, c = _people(ws)[:3]
        dom = ws.domain
        at = iter(_BASE + n * _DAY * 3.7 for n in range(100))
        eng = ds.add_file(
            ws, "Engineering", ds.FOLDER, owner=a, modified=next(at), permissions=[ds.domain_permission(ws, dom)]
        )
        # as Drive lists a folder's permissions: those it inherits from Engineering too
        design = ds.add_file(
            ws,
            "Design Docs",
            ds.FOLDER,
            parent=eng.id,
            owner=a,
            modified=next(at),
            permissions=[ds.domain_permission(ws, dom)],
        )
        ops = ds.add_file(ws, "Operations", ds.FOLDER, owner=b, modified=next(at))
        private = ds.add_file(ws, "Personal", ds.FOLDER, owner=c, modified=next(at))

        def add(
            name: str, mime: str, content: bytes | str, parent: str, owner: str, perms: list[ds.Permission]
        ) -> None:
            ds.add_file(ws, name, mime, content, parent=parent, owner=owner, permissions=perms, modified=next(at))

        add(
            "Search service design",
            ds.DOC,
            SAMPLE_DOCS["Search service design"],
            design.id,
            a,
            [ds.domain_permission(ws, dom), ds.user_permission(ws, b, "writer")],
        )
        add("Onboarding guide", ds.DOC, SAMPLE_DOCS["Onboarding guide"], eng.id, b, [ds.anyone_permission()])
        add(
            "Q3 roadmap",
            ds.SHEET,
            "Quarter,Project,Owner,Status\nQ3,Search v2,alice,on track\n"
            "Q3,Billing migration,bob,at risk\nQ3,Drive connector,carol,done\n",
            eng.id,
            a,
            [ds.user_permission(ws, f"eng@{dom}", "reader", "group")],
        )
        # the directory's groups: eng@ holds b and, through the nested platform@, c
        ds.set_group(ws, f"eng@{dom}", [ds.GroupMember(b), ds.GroupMember(f"platform@{dom}", "GROUP")])
        ds.set_group(ws, f"platform@{dom}", [ds.GroupMember(c)])
        add(
            "All-hands deck",
            ds.SLIDES,
            "Slide 1: All-hands March\nRevenue grew 12% quarter on "
            "quarter.\n\nSlide 2: Hiring\nWe are hiring four engineers and a designer.",
            eng.id,
            b,
            [ds.domain_permission(ws, dom)],
        )
        add(
            "Incident postmortem 2024-03.pdf",
            PDF,
            make_pdf(
                "Incident postmortem: March outage",
                [
                    "On March 12 the primary database ran out of disk space at 14:02 UTC and the API "
                    "returned errors for 47 minutes.",
                    "Root cause: a runaway audit-log table. Action "
                    "items: alert at 80% disk, rotate audit logs daily, add a runbook entry.",
                ],
            ),
            ops.id,
            b,
            [ds.user_permission(ws, a), ds.user_permission(ws, c)],
        )
        add(
            "Security policy.docx",
            DOCX,
            make_docx(
                "Security policy",
                [
                    "All laptops use full-disk encryption and lock after five minutes.",
                    "Report phishing to security@" + dom + " within one hour.",
                ],
            ),
            ops.id,
            b,
            [ds.domain_permission(ws, dom)],
        )
        add(
            "Roadmap review.pptx",
            PPTX,
            make_pptx(
                "Roadmap review",
                [
                    ("Search v2", "Hybrid retrieval ships in September."),
                    ("Risks", "Billing migration depends on the vendor API freeze."),
                ],
            ),
            eng.id,
            a,
            [ds.domain_permission(ws, dom)],
        )
        add(
            "runbook.txt",
            "text/plain",
            "VPN runbook\n\n1. Install the client from the IT portal.\n"
            "2. Sign in with your SSO account.\n3. If the tunnel drops, restart the client.\n",
            ops.id,
            b,
            [ds.domain_permission(ws, dom)],
        )
        add(
            "README.md",
            "text/markdown",
            "# Operations\n\nOn-call rotates weekly; the pager schedule lives in the Operations calendar.\n",
            ops.id,
            b,
            [ds.domain_permission(ws, dom)],
        )
        add(
            "faq.html",
            "text/html",
            "<html><body><h1>FAQ</h1><p>Expense reports are due by the 5th of each month.</p></body></html>",
            ops.id,
            b,
            [ds.anyone_permission()],
        )
        add("architecture.png", "image/png", make_png(), design.id, a, [ds.domain_permission(ws, dom)])
        add("logs.zip", "application/zip", make_zip({"app.log": "ERROR disk full"}), ops.id, b, [])
        add("1:1 notes (private)", ds.DOC, SAMPLE_DOCS["1:1 notes (private)"], private.id, c, [])
        ds.trash(ws, _by_name(ws, "logs.zip").id)
        wiki = ds.add_drive(
            ws, "Company Wiki", [ds.domain_permission(ws, dom, "reader"), ds.user_permission(ws, a, "organizer")]
        )
        ds.add_file(
            ws,
            "Holiday calendar",
            ds.DOC,
            "# Holiday calendar 2024\n\nThe office is closed on December 24-26 and January 1.",
            parent=wiki.id,
            owner=a,
            modified=next(at),
        )
        ds.add_file(
            ws,
            "Expense policy.pdf",
            PDF,
            make_pdf("Expense policy", ["Meals while travelling are reimbursed up to 60 USD a day with receipts."]),
            parent=wiki.id,
            owner=b,
            modified=next(at),
        )


def _by_name(ws: Any, name: str) -> ds.DriveFile:
    return next(f for f in ds.state(ws).files.values() if f.name == name)


# --- generated drives -------------------------------------------------------------------------
_WORDS = (
    "search index vector permission drive folder budget roadmap incident customer release "
    "latency migration security policy hiring design review quarterly revenue billing vendor "
    "contract onboarding meeting notes analysis forecast pipeline launch feedback metrics"
).split()


def _sentence(rng: Any, words: int = 12) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _paragraphs(rng: Any, n: int) -> list[str]:
    return [" ".join(_sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(n)]


def _generated_content(rng: Any, name: str) -> tuple[str, str, bytes | str]:
    roll = rng.random()
    paras = _paragraphs(rng, rng.randint(1, 4))
    if roll < 0.35:
        return name, ds.DOC, f"# {name}\n\n" + "\n\n".join(paras)
    if roll < 0.50:
        rows = [",".join(rng.choice(_WORDS) for _ in range(4)) for _ in range(rng.randint(3, 20))]
        return name, ds.SHEET, "col_a,col_b,col_c,col_d\n" + "\n".join(rows) + "\n"
    if roll < 0.55:
        return name, ds.SLIDES, "\n\n".join(f"Slide {i}: {p}" for i, p in enumerate(paras, 1))
    if roll < 0.72:
        return f"{name}.txt", "text/plain", "\n\n".join(paras)
    if roll < 0.77:
        return f"{name}.md", "text/markdown", f"# {name}\n\n" + "\n\n".join(paras)
    if roll < 0.87:
        return f"{name}.pdf", PDF, make_pdf(name, paras)
    if roll < 0.91:
        return f"{name}.docx", DOCX, make_docx(name, paras)
    if roll < 0.96:
        return f"{name}.png", "image/png", make_png()
    return f"{name}.zip", "application/zip", make_zip({"a.txt": paras[0]})


def seed_generated(ws: Any, files: int = 200, **_: int) -> None:
    """`files` files (plus folders) over the workspace's users; the same `ws.rng` gives the same drive."""
    with ws.lock:
        rng, people, dom = ws.rng, _people(ws), ws.domain
        shared = ds.add_drive(ws, "Generated shared drive", [ds.domain_permission(ws, dom)])
        folders: list[str] = [shared.id]
        for n in range(max(3, files // 40)):
            parent = rng.choice(folders) if folders[1:] and rng.random() < 0.6 else None
            folder = ds.add_file(
                ws, f"Folder {n:04d}", ds.FOLDER, parent=parent, owner=rng.choice(people), modified=_BASE + n * 60
            )
            folders.append(folder.id)
        for n in range(files):
            name, mime, content = _generated_content(rng, f"{rng.choice(_WORDS).title()} report {n:05d}")
            owner = rng.choice(people)
            perms = [ds.user_permission(ws, rng.choice(people)) for _ in range(rng.randint(0, 2))]
            if rng.random() < 0.3:
                perms.append(ds.domain_permission(ws, dom))
            if rng.random() < 0.05:
                perms.append(ds.anyone_permission())
            ds.add_file(
                ws,
                name,
                mime,
                content,
                parent=rng.choice(folders),
                owner=owner,
                permissions=perms,
                modified=_BASE + rng.random() * 300 * _DAY,
            )
