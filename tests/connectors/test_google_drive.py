"""The google_drive connector against the emulated Drive: content, ACLs, incremental sync, errors."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import pytest

from inlet.config import Settings, parse_config
from inlet.connectors.events import Hint, WebhookRequest
from inlet.connectors.google_drive import GoogleDriveConfig, GoogleDriveConnector
from inlet.connectors.google_drive_client import DriveApiError
from inlet.connectors.model import ACL, AclUpdate, Checkpoint, Deletion, Document, Item, Progress, Skipped
from inlet.errors import ConfigError, CredentialsError, InletError, NothingInScopeError, RetriableError
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from inlet.sandbox import drive
from inlet.sandbox import drive_auth
from inlet.sandbox import drive_state as ds
from inlet.sandbox.documents import make_pdf
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace
from inlet.status import recent_skips
from inlet.storage.sqlite.state import SqliteState
from inlet.sync.engine import Engine, RunResult


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    ws = Workspace()
    drive.seed_sample(ws)
    with Sandbox(ws=ws) as sandbox:
        yield sandbox


def connector(sb: Sandbox, kind: str = "service_account", **overrides: Any) -> GoogleDriveConnector:
    creds = drive.write_credentials(sb.ctx, Path(sb.ctx.workdir) / f"{kind}.json", kind)
    config = GoogleDriveConfig(
        name="team-drive",
        type="google_drive",
        credentials_file=creds,
        api_endpoint=sb.ctx.http_url + "/drive/v3/",
        backoff_seconds=0.01,
        max_requests_per_second=0,
        **overrides,
    )
    return GoogleDriveConnector(config)


def run(items: Iterable[Item]) -> tuple[list[Item], dict[str, Any] | None]:
    """All items but checkpoints, and the last checkpoint's state."""
    out, state = [], None
    for item in items:
        if isinstance(item, Checkpoint):
            state = item.state
        else:
            out.append(item)
    return out, state


def docs(items: list[Item]) -> dict[str, Document]:
    return {i.title: i for i in items if isinstance(i, Document)}


def file_named(sb: Sandbox, name: str) -> ds.DriveFile:
    return next(f for f in sb.ws.drive.files.values() if f.name == name)


def doc_id(sb: Sandbox, name: str) -> str:
    return f"team-drive:{file_named(sb, name).id}"


# --- content and ACLs -------------------------------------------------------------------------
def test_full_crawl_reads_every_format_with_metadata_and_acl(sb: Sandbox) -> None:
    items, state = run(connector(sb).load(None))
    found = docs(items)
    assert set(found) == {
        "Search service design",
        "Onboarding guide",
        "Q3 roadmap",
        "All-hands deck",
        "Incident postmortem 2024-03.pdf",
        "Security policy.docx",
        "Roadmap review.pptx",
        "runbook.txt",
        "README.md",
        "faq.html",
        "1:1 notes (private)",
        "Holiday calendar",
        "Expense policy.pdf",
    }  # trashed logs.zip absent, image skipped
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [(s.reason, s.failed) for s in skipped] == [("architecture.png: image", False)]
    design = found["Search service design"]
    assert design.text.startswith("# Search service design") and "**300 ms**" in design.text  # Markdown
    assert design.metadata["folder"] == "Engineering/Design Docs"
    assert design.metadata["mime_type"] == ds.DOC
    owner = file_named(sb, "Search service design").owner
    assert design.author == design.metadata["owner"] == owner
    design_id = file_named(sb, "Search service design").id
    assert design.url == f"https://docs.google.com/document/d/{design_id}/edit?usp=drivesdk"
    assert design.updated_at is not None and design.updated_at.tzinfo is not None
    assert found["Q3 roadmap"].text.splitlines()[:3] == ["## Sheet1", "", "Quarter | Project | Owner | Status"]
    assert "Revenue grew 12%" in found["All-hands deck"].text
    assert "47 minutes" in found["Incident postmortem 2024-03.pdf"].text
    assert "full-disk encryption" in found["Security policy.docx"].text
    assert "Hybrid retrieval" in found["Roadmap review.pptx"].text
    assert "5th of each month" in found["faq.html"].text
    assert found["Onboarding guide"].acl.public is True
    # the group's address and its members' (bob; carol through the nested group platform@)
    roadmap = ["alice@example.com", "bob@example.com", "carol@example.com", "eng@example.com"]
    assert found["Q3 roadmap"].acl.users == roadmap and file_named(sb, "Q3 roadmap").owner == roadmap[0]
    assert design.acl.domains == [sb.ws.domain] and not design.acl.public
    assert found["1:1 notes (private)"].acl == ACL(users=[file_named(sb, "1:1 notes (private)").owner])
    wiki = found["Holiday calendar"]
    assert wiki.metadata["shared_drive"] == "Company Wiki" and wiki.metadata["folder"] == "Company Wiki"
    assert wiki.acl.domains == [sb.ws.domain] and wiki.author  # drive members, via permissions.list
    assert state is not None and state["phase"] == "changes" and len(state["known"]) == 13


def test_policy_skips_and_extraction_failures_do_not_stop_the_sync(sb: Sandbox) -> None:
    ws = sb.ws
    ops = file_named(sb, "Operations").id
    ds.add_file(ws, "broken.pdf", "application/pdf", b"%PDF-1.4 not really", parent=ops, owner="a@example.com")
    ds.add_file(ws, "huge.txt", "text/plain", "x" * 5000, parent=ops, owner="a@example.com")
    ds.add_file(ws, "clip.mp4", "video/mp4", b"\0" * 10, parent=ops, owner="a@example.com")
    locked = ds.add_file(ws, "locked.txt", "text/plain", "secret", parent=ops, owner="a@example.com")
    ds.edit(ws, locked.id, not_downloadable=True)
    ws.drive.export_limit = 400  # the sample's longest Doc is over it
    items, _ = run(connector(sb, max_file_bytes=4000).load(None))
    skipped = {s.reason.split(":")[0]: s for s in items if isinstance(s, Skipped)}
    assert skipped["broken.pdf"].failed is True
    assert skipped["huge.txt"].failed is False and "size cap" in skipped["huge.txt"].reason
    assert skipped["clip.mp4"].failed is False and skipped["clip.mp4"].reason.endswith("video")
    assert skipped["locked.txt"].failed is False and "cannotDownloadFile" in skipped["locked.txt"].reason
    assert "exportSizeLimitExceeded" in skipped["Search service design"].reason
    assert not skipped["Search service design"].failed
    assert "runbook.txt" in docs(items) and "Expense policy.pdf" in docs(items)


def test_a_file_drive_flagged_as_abusive_is_a_skip_by_policy(sb: Sandbox) -> None:
    ws = sb.ws
    ops = file_named(sb, "Operations").id
    ds.add_file(ws, "flagged.txt", "text/plain", "spam", parent=ops, owner="a@example.com")
    sb.faults.fail("drive", "files.get", 403, reason="cannotDownloadAbusiveFile")  # the first download
    items, _ = run(connector(sb).load(None))
    skips = [s for s in items if isinstance(s, Skipped)]
    flagged = [s for s in skips if "cannotDownloadAbusiveFile" in s.reason]
    assert len(flagged) == 1 and flagged[0].failed is False  # not a read error retried every run


def test_a_sheet_is_read_sheet_by_sheet_and_a_too_large_one_is_skipped(sb: Sandbox) -> None:
    """Drive's CSV export holds the first sheet only: the workbook (XLSX) export holds them all."""
    ops = file_named(sb, "Operations").id
    budget = "Item,Cost\nLaptops,1200\n"
    ds.add_file(sb.ws, "Budget", ds.SHEET, "Team,Head\nSearch,alice\n", parent=ops, sheets={"Costs": budget})
    text = docs(run(connector(sb).load(None))[0])["Budget"].text
    assert text == "## Sheet1\n\nTeam | Head\nSearch | alice\n\n## Costs\n\nItem | Cost\nLaptops | 1200"
    sb.ws.drive.export_limit = 30  # Budget's sheets together are over it
    items, _ = run(connector(sb).load(None))
    skipped = next(i for i in items if isinstance(i, Skipped) and i.title == "Budget")
    assert "exportSizeLimitExceeded" in skipped.reason and not skipped.failed
    assert "Budget" not in docs(items)


# --- incremental ------------------------------------------------------------------------------
def test_no_change_resync_is_one_changes_call_per_log(sb: Sandbox) -> None:
    """The user's change log, and the one shared drive's own; and that drive's members."""
    c = connector(sb)
    _, state = run(c.load(None))
    sb.faults.reset_counts()
    items, again = run(c.load(state))
    assert items == [] and again == state
    assert sb.faults.count("drive:*") == 3 and sb.faults.count("drive:changes.list") == 2
    assert sb.faults.count("drive:permissions.list") == 1


def test_changes_feed_edits_moves_trash_and_removal(sb: Sandbox) -> None:
    ws, c = sb.ws, connector(sb)
    first, state = run(c.load(None))
    before = docs(first)
    ds.edit(ws, file_named(sb, "runbook.txt").id, content="VPN runbook v2: use WireGuard now.")
    ds.move(ws, file_named(sb, "README.md").id, file_named(sb, "Design Docs").id)
    ds.trash(ws, file_named(sb, "faq.html").id)
    ds.delete(ws, file_named(sb, "Q3 roadmap").id)
    ds.edit(ws, file_named(sb, "Engineering").id, name="Eng")  # a folder rename
    new = ds.add_file(
        ws,
        "new plan",
        ds.DOC,
        "# Plan\n\nShip it.",
        parent=file_named(sb, "Operations").id,
        owner=file_named(sb, "runbook.txt").owner,
    )
    items, state2 = run(c.load(state))
    found = docs(items)
    assert found["runbook.txt"].text == "VPN runbook v2: use WireGuard now."
    assert found["README.md"].metadata["folder"] == "Eng/Design Docs"
    assert found["README.md"].text == before["README.md"].text
    assert found["Search service design"].metadata["folder"] == "Eng/Design Docs"  # below the renamed folder
    assert found["new plan"].id == f"team-drive:{new.id}"
    deleted = {i.id for i in items if isinstance(i, Deletion)}
    assert deleted == {before["faq.html"].id, before["Q3 roadmap"].id}
    assert state2 is not None and before["faq.html"].id.split(":")[1] not in state2["known"]
    assert new.id in state2["known"]


def test_a_folder_trashed_takes_its_files_out_with_their_own_changes(sb: Sandbox) -> None:
    """Drive documents a file below a trashed folder as trashed too (`trashed`: "either explicitly
    or from a trashed parent folder") and its change log as the current state of each item that
    changed: each such file's change deletes it, as a file trashed on its own is."""
    ws, c = sb.ws, connector(sb)
    first, state = run(c.load(None))
    eng = file_named(sb, "Engineering").id
    below = {f"team-drive:{f.id}" for f in ds.descendants(ws, eng)}
    indexed = below & {d.id for d in docs(first).values()}
    ds.trash(ws, eng)
    items, state = run(c.load(state))
    assert all(isinstance(i, Deletion) for i in items) and len(indexed) >= 3
    assert indexed <= {i.id for i in items} <= below
    assert state is not None and not indexed & {f"team-drive:{n}" for n in state["known"]}


def test_shared_drive_changes_rename_paths_and_leaving_deletes_its_documents(sb: Sandbox) -> None:
    """The user's log names changes to a shared drive itself (changeType "drive", no fileId)."""
    ws, c = sb.ws, connector(sb)
    _, state = run(c.load(None))
    wiki = next(iter(ws.drive.drives.values())).id
    ds.rename_drive(ws, wiki, "Handbook")
    items, state = run(c.load(state))
    assert {d.title: (d.metadata["shared_drive"], d.metadata["folder"]) for d in docs(items).values()} == {
        "Holiday calendar": ("Handbook", "Handbook"),
        "Expense policy.pdf": ("Handbook", "Handbook"),
    }
    assert not any(isinstance(i, Deletion) for i in items)
    assert run(c.load(state))[0] == []  # the page token moved past the drive's change
    gone = {doc_id(sb, "Holiday calendar"), doc_id(sb, "Expense policy.pdf")}
    ds.leave_drive(ws, wiki)  # Drive logs the drive's removal, none of its files
    items, state = run(c.load(state))
    assert items == [Deletion(id=i) for i in sorted(gone)]
    assert state is not None and not gone & {f"team-drive:{n}" for n in state["known"]}
    assert len(state["known"]) == 11 and state["drives"] == state["drive_tokens"] == {}


def test_a_shared_drives_own_change_log_is_followed(sb: Sandbox) -> None:
    """Drive need not show a member the changes of a shared drive's items in the user's log."""
    ws, c = sb.ws, connector(sb)
    ws.drive.drive_items_in_user_log = False
    _, state = run(c.load(None))
    wiki = next(iter(ws.drive.drives.values())).id
    ds.edit(ws, file_named(sb, "Holiday calendar").id, content="# Holidays\n\nClosed on May 1.")
    ds.trash(ws, file_named(sb, "Expense policy.pdf").id)
    ds.add_file(ws, "Travel policy", ds.DOC, "# Travel\n\nBook trains.", parent=wiki)
    items, state = run(c.load(state))
    assert {d.title: d.text for d in docs(items).values()} == {
        "Holiday calendar": "# Holidays\n\nClosed on May 1.",
        "Travel policy": "# Travel\n\nBook trains.",
    }
    assert [i for i in items if isinstance(i, Deletion)] == [Deletion(id=doc_id(sb, "Expense policy.pdf"))]
    sales = ds.add_drive(ws, "Sales", [ds.domain_permission(ws, ws.domain)])  # the user joins it
    ds.add_file(ws, "Price list", ds.DOC, "# Prices\n\nGold: 10.", parent=sales.id)
    items, state = run(c.load(state))
    assert [d.title for d in docs(items).values()] == ["Price list"]  # listed when joined
    assert state is not None and set(state["drive_tokens"]) == {wiki, sales.id}
    ds.edit(ws, file_named(sb, "Price list").id, content="# Prices\n\nGold: 12.")
    items, _ = run(c.load(state))
    assert [d.text for d in docs(items).values()] == ["# Prices\n\nGold: 12."]


def test_a_file_moved_into_or_out_of_a_shared_drive_is_moved_not_deleted(sb: Sandbox) -> None:
    """Leaving one change log for another is a `removed` change in the old one; the file is
    still there to read (includeCorpusRemovals)."""
    ws, c = sb.ws, connector(sb)
    ws.drive.drive_items_in_user_log = False
    _, state = run(c.load(None))
    wiki = next(iter(ws.drive.drives.values()))
    ds.move(ws, file_named(sb, "runbook.txt").id, wiki.id)
    ds.move(ws, file_named(sb, "Holiday calendar").id, file_named(sb, "Operations").id)
    items, state = run(c.load(state))
    assert not any(isinstance(i, Deletion) for i in items)
    moved = docs(items)
    assert moved["runbook.txt"].metadata["shared_drive"] == "Company Wiki"
    assert (
        moved["Holiday calendar"].metadata["folder"] == "Operations"
        and "shared_drive" not in moved["Holiday calendar"].metadata
    )
    assert state is not None and {file_named(sb, n).id for n in ("runbook.txt", "Holiday calendar")} <= set(
        state["known"]
    )


def test_an_incomplete_listing_is_narrowed_to_each_drive_and_is_then_complete(sb: Sandbox) -> None:
    """Drive leaves the shared drive's files out of every listing over all drives and says
    `incompleteSearch`: the crawl lists My Drive and the shared drive on their own (complete), so
    it indexes every file, reconciles deletions, and `live_ids` answers."""
    ws = sb.ws
    ds.set_incomplete_search(ws)  # the shared drive's files are left out of allDrives listings
    c = connector(sb)
    first, state = run(c.load(None))
    assert {"Holiday calendar", "Expense policy.pdf"} <= set(docs(first))
    assert not any(isinstance(i, Skipped) and i.failed for i in first)  # a complete run
    assert state is not None and len(state["known"]) == 13 and state["incomplete"] is False
    gone = doc_id(sb, "runbook.txt")
    ds.delete(ws, file_named(sb, "runbook.txt").id)
    ds.expire_page_tokens(ws)  # a re-crawl, incomplete again over all drives
    items, state2 = run(c.load(state))
    assert [i.id for i in items if isinstance(i, Deletion)] == [gone]
    assert set(docs(items)) == set(docs(first)) - {"runbook.txt"}
    assert sorted(c.live_ids()) == sorted(f"team-drive:{n}" for n in (state2 or {})["known"])


def test_without_link_shares_only_sharing_people_can_find_grants_anyone_or_the_domain(sb: Sandbox) -> None:
    """`link_shares = false`: "anyone (in the domain) with the link" grants nothing (Drive shows
    such a file in nobody's search); discoverable sharing and people named still do."""
    guide, design = file_named(sb, "Onboarding guide"), file_named(sb, "Search service design")
    assert [p.type for p in guide.permissions if p.type == "anyone"] and not any(
        p.discoverable for p in guide.permissions + design.permissions
    )
    found = docs(run(connector(sb, link_shares=False).load(None))[0])
    assert found["Onboarding guide"].acl.public is False
    assert found["Search service design"].acl.domains == [] and design.owner in found["Search service design"].acl.users
    assert found["Onboarding guide"].acl.users  # its owner still reads it
    for p in design.permissions:
        p.discoverable = p.discoverable or p.type == "domain"  # now found by everyone in the domain
    found = docs(run(connector(sb, link_shares=False).load(None))[0])
    assert found["Search service design"].acl.domains == [sb.ws.domain]
    assert docs(run(connector(sb).load(None))[0])["Onboarding guide"].acl.public is True  # the default


def test_permission_change_moves_the_acl_from_one_user_to_another(sb: Sandbox) -> None:
    ws, c = sb.ws, connector(sb)
    people = [u.email for u in ws.users.values()]
    notes = file_named(sb, "1:1 notes (private)")
    ds.set_permissions(ws, notes.id, [ds.user_permission(ws, people[0])])
    first, state = run(c.load(None))
    old = docs(first)["1:1 notes (private)"]
    assert people[0] in old.acl.users and people[1] not in old.acl.users
    ds.set_permissions(ws, notes.id, [ds.user_permission(ws, people[1])])
    items, _ = run(c.load(state))
    assert [type(i).__name__ for i in items] == ["Document"]
    new = items[0]
    assert isinstance(new, Document) and new.id == old.id
    assert people[1] in new.acl.users and people[0] not in new.acl.users
    assert new.content_hash() == old.content_hash() and new.meta_hash() != old.meta_hash()


def test_interrupted_crawl_resumes_from_the_last_checkpoint(sb: Sandbox) -> None:
    full, _ = run(connector(sb, page_size=3).load(None))
    expected = {d.id: d for d in full if isinstance(d, Document)}
    for stop_after in (2, 5, 9):
        c = connector(sb, page_size=3)
        gen = c.load(None)
        seen: dict[str, Document] = {}
        last: dict[str, Any] | None = None
        for item in itertools.islice(gen, stop_after + 3):
            if isinstance(item, Checkpoint):
                last = item.state
            elif isinstance(item, Document):
                seen[item.id] = item
        gen.close()  # the process "crashed"
        rest, _ = run(connector(sb, page_size=3).load(last))
        seen.update({d.id: d for d in rest if isinstance(d, Document)})
        assert seen == expected, stop_after


def listed_files(sb: Sandbox) -> int:
    """What a crawl goes through, from the sandbox's own state: every file not a folder, not trashed."""
    return sum(1 for f in sb.ws.drive.files.values() if f.mime_type != ds.FOLDER and not f.trashed)


def progress_of(items: Iterable[Item]) -> tuple[list[int], list[int]]:
    """The totals and the done counts a load reported, in order."""
    progress = [i for i in items if isinstance(i, Progress)]
    return [p.total for p in progress if p.total is not None], [p.done for p in progress if p.done is not None]


def test_a_crawl_reports_its_listing_as_total_and_ends_with_done_equal_to_it(sb: Sandbox) -> None:
    """Issue 14: Drive's listing gives the bar its total; the changes feed has none, so none is shown."""
    ws, c = sb.ws, connector(sb, page_size=4)
    ops = file_named(sb, "Operations").id
    for n in range(6):
        ds.add_file(ws, f"note {n}.txt", "text/plain", f"note number {n}", parent=ops, owner="a@example.com")
    items = list(c.load(None))
    totals, done = progress_of(items)
    assert totals == [listed_files(sb)]
    assert done == sorted(done) and done[-1] == totals[0] and len(set(done)) > 5  # moves file by file
    first_doc = next(n for n, i in enumerate(items) if isinstance(i, Document))
    assert any(isinstance(i, Progress) and i.total for i in items[:first_doc])  # known before any file
    state = [i for i in items if isinstance(i, Checkpoint)][-1].state
    ds.add_file(ws, "later.txt", "text/plain", "added later", parent=ops, owner="a@example.com")
    changed = list(c.load(state))
    assert [d.title for d in changed if isinstance(d, Document)] == ["later.txt"]
    assert progress_of(changed) == ([], [])


def test_a_resumed_crawl_counts_only_the_files_left(sb: Sandbox) -> None:
    c = connector(sb, page_size=3)
    checkpoints = [i.state for i in c.load(None) if isinstance(i, Checkpoint)]
    mid = next(s for s in checkpoints if s["phase"] == "crawl" and s["listed"] == 6)  # after two pages
    rest = list(connector(sb, page_size=3).load(mid))
    totals, done = progress_of(rest)
    assert totals == [listed_files(sb) - 6] and done[-1] == totals[0]


def test_refused_change_token_falls_back_to_a_reconciling_recrawl(sb: Sandbox) -> None:
    ws, c = sb.ws, connector(sb)
    first, state = run(c.load(None))
    gone = doc_id(sb, "runbook.txt")
    ds.delete(ws, file_named(sb, "runbook.txt").id)
    ds.expire_page_tokens(ws)  # the saved token is refused: 400
    items, state2 = run(c.load(state))
    assert [i.id for i in items if isinstance(i, Deletion)] == [gone]
    assert set(docs(items)) == set(docs(first)) - {"runbook.txt"}
    assert state2 is not None and state2["prev"] is None and state2["phase"] == "changes"
    sb.faults.reset_counts()
    assert run(c.load(state2))[0] == [] and sb.faults.count("drive:*") == 3  # the two logs, the drive's members


def test_folder_filter_and_shared_drive_switch(sb: Sandbox) -> None:
    c = connector(sb, folders=["Operations", file_named(sb, "Design Docs").id], shared_drives=False)
    items, state = run(c.load(None))
    assert set(docs(items)) == {
        "Incident postmortem 2024-03.pdf",
        "Security policy.docx",
        "runbook.txt",
        "README.md",
        "faq.html",
        "Search service design",
    }
    ds.move(sb.ws, file_named(sb, "runbook.txt").id, file_named(sb, "Personal").id)
    moved, _ = run(c.load(state))
    assert moved == [Deletion(id=doc_id(sb, "runbook.txt"))]
    live = set(connector(sb, folders=["Operations"]).live_ids())
    assert live == {
        doc_id(sb, n) for n in ("Incident postmortem 2024-03.pdf", "Security policy.docx", "README.md", "faq.html")
    }


def test_a_folder_naming_nothing_is_a_listed_skip_of_every_run_and_none_refuses_the_run(sb: Sandbox) -> None:
    c = connector(sb, folders=["Operations", "Engneering"], shared_drives=False)
    for checkpoint in (None, run(c.load(None))[1]):  # the crawl, then the changes feed
        items, _ = run(c.load(checkpoint))
        (skip,) = [i for i in items if isinstance(i, Skipped)]
        assert not skip.failed and skip.reason.startswith(
            "key 'folders': no folder or shared drive matches 'Engneering' (closest: 'Engineering'"
        )
    assert "Security policy.docx" in docs(run(c.load(None))[0])
    for read in (lambda c: run(c.load(None)), lambda c: c.live_ids()):
        with pytest.raises(NothingInScopeError, match="'Engneering'"):
            read(connector(sb, folders=["Engneering"]))


def _until_it_fails(items: Iterable[Item]) -> list[Item]:
    """The items a run yields before it raises `NothingInScopeError` (checkpoints included)."""
    out: list[Item] = []
    with pytest.raises(NothingInScopeError, match="nothing was read or deleted") as info:
        for item in items:
            out.append(item)
    return [*out, Skipped(id="error", reason=str(info.value))]


def _rename_folder(sb: Sandbox, name: str, to: str) -> Any:
    folder = file_named(sb, name).id
    ds.edit(sb.ws, folder, name=to)
    return lambda: ds.edit(sb.ws, folder, name=name)


def _move_folder(sb: Sandbox, name: str, to: str) -> Any:
    folder, parent = file_named(sb, name).id, file_named(sb, name).parents[0]
    ds.move(sb.ws, folder, file_named(sb, to).id)
    return lambda: ds.move(sb.ws, folder, parent)


def _rename_drive(sb: Sandbox, to: str) -> Any:
    drive = wiki(sb)
    ds.rename_drive(sb.ws, drive.id, to)
    return lambda: ds.rename_drive(sb.ws, drive.id, "Company Wiki")


@pytest.mark.parametrize(
    ("folders", "change"),
    [
        (["Engineering"], lambda sb: _rename_folder(sb, "Engineering", "Eng")),
        (["Engineering/Design Docs"], lambda sb: _move_folder(sb, "Design Docs", "Operations")),
        (["Company Wiki"], lambda sb: _rename_drive(sb, "Wiki")),
    ],
    ids=["folder renamed", "folder moved", "shared drive renamed"],
)
def test_the_change_log_taking_every_folders_entry_away_fails_the_sync_before_it_deletes_anything(
    sb: Sandbox, folders: list[str], change: Any
) -> None:
    """The rename arrives through the change log: the scope is checked again on the tree it leaves,
    before a document is deleted; the checkpoint stays before the change, so the folder named
    again (renamed back) goes on from there with every document in place."""
    c = connector(sb, folders=folders)
    first, state = run(c.load(None))
    indexed = {d.id for d in first if isinstance(d, Document)}
    assert indexed
    undo = change(sb)
    for _ in range(2):  # failing again, the same way, while nothing names the folder
        items = _until_it_fails(c.load(state))
        assert not [i for i in items if isinstance(i, (Deletion, Document, Checkpoint))], items
        assert f"no folder or shared drive matches {folders[0]!r}" in items[-1].reason
    undo()
    items, state = run(c.load(state))
    assert not [i for i in items if isinstance(i, Deletion)] and {d.id for d in docs(items).values()} <= indexed
    assert state is not None and {f"team-drive:{n}" for n in state["known"]} == indexed


def test_a_scope_the_log_takes_away_on_one_page_and_gives_back_on_a_later_one_does_not_stop_the_sync(
    sb: Sandbox,
) -> None:
    """Checked page by page, a tree no entry names is checked against Drive's folders as they are
    now: one that names a folder the log has yet to bring lets the run go on (it would fail for
    ever at that page otherwise)."""
    ws = sb.ws
    c = connector(sb, folders=["Engineering"], shared_drives=False, page_size=1)
    first, state = run(c.load(None))
    ds.edit(ws, file_named(sb, "Engineering").id, name="Old engineering")  # first in the log
    ds.edit(ws, file_named(sb, "Operations").id, name="Engineering")
    ds.set_permissions(ws, file_named(sb, "Engineering").id, [ds.domain_permission(ws, ws.domain)])  # its path shown
    items, state = run(c.load(state))
    below = {"Incident postmortem 2024-03.pdf", "Security policy.docx", "runbook.txt", "README.md", "faq.html"}
    assert set(docs(items)) == below and docs(items)["runbook.txt"].metadata["folder"] == "Engineering"
    assert {i.id for i in items if isinstance(i, Deletion)} == {d.id for d in docs(first).values()}  # the old one's
    assert state is not None and {f"team-drive:{n}" for n in state["known"]} == {d.id for d in docs(items).values()}


def test_a_folder_path_filter_on_my_drive_survives_its_root_folder(sb: Sandbox) -> None:
    """Items at the top of My Drive have the root folder ("My Drive", which no listing names) as
    their parent: paths start below it, so a path filter keeps matching once the root is met."""
    ws = sb.ws
    owner = file_named(sb, "Engineering").owner
    top = ds.add_file(ws, "readme.txt", "text/plain", "Start here.", owner=owner)  # read after the design doc
    assert top.parents == [ds.root_id(ws, owner)]
    c = connector(sb, folders=["Engineering/Design Docs"], shared_drives=False, subject=owner)  # its owner's
    items, state = run(c.load(None))
    assert set(docs(items)) == {"Search service design"}
    root = ds.root_id(ws, owner)
    assert state is not None and state["root"] == root and state["folders"][root] == [None, None]
    assert docs(items)["Search service design"].metadata["folder"] == "Engineering/Design Docs"
    ds.edit(ws, file_named(sb, "Search service design").id, content="# Search service design\n\nv2")
    edited, _ = run(c.load(state))
    assert [(type(i).__name__, i.id) for i in edited] == [("Document", doc_id(sb, "Search service design"))]
    assert docs(edited)["Search service design"].metadata["folder"] == "Engineering/Design Docs"
    assert set(c.live_ids()) == {doc_id(sb, "Search service design")}
    everything, _ = run(connector(sb, subject=owner).load(None))
    assert docs(everything)["readme.txt"].metadata["folder"] == ""
    assert docs(everything)["All-hands deck"].metadata["folder"] == "Engineering"
    # shared with anyone, in a folder of the domain: a reader outside it is not told where it is
    assert docs(everything)["Onboarding guide"].metadata["folder"] == ""


def shared_folder(sb: Sandbox) -> tuple[ds.DriveFile, list[ds.DriveFile]]:
    """zoe's folder "Q4 Reports" at the top of her My Drive, its two files; the folder's change
    logged after its files' (its sharing set last)."""
    ws, zoe = sb.ws, "zoe@example.com"
    q4 = ds.add_file(ws, "Q4 Reports", ds.FOLDER, owner=zoe)
    files = [ds.add_file(ws, f"c{n}.txt", "text/plain", f"Quarter {n}.", parent=q4.id, owner=zoe) for n in (1, 2)]
    ds.set_permissions(ws, q4.id, [ds.user_permission(ws, drive_auth.CLIENT_EMAIL)])
    return q4, files


def test_a_folder_shared_with_me_met_through_its_files_is_named_not_taken_for_my_drives_root(sb: Sandbox) -> None:
    """Drive answers a "Shared with me" folder without parents (its own parent, in its owner's My
    Drive, is not the reader's to see), as it answers My Drive's root: met through its files on an
    earlier page of the log than its own change, it still names their path, a later rename
    reaches them, and a `folders` entry naming it selects them."""
    ws = sb.ws
    c, scoped = connector(sb, page_size=1), connector(sb, page_size=1, folders=["Q4 Reports", "Engineering"])
    _, state = run(c.load(None))
    _, scoped_state = run(scoped.load(None))
    q4, (c1, c2) = shared_folder(sb)
    items, state = run(c.load(state))
    assert {d.title: d.metadata["folder"] for d in docs(items).values()} == {
        "c1.txt": "Q4 Reports",
        "c2.txt": "Q4 Reports",
    }
    assert state is not None and state["folders"][q4.id][:2] == ["Q4 Reports", None]
    ds.edit(ws, q4.id, name="Q4 Final")
    items, _ = run(c.load(state))
    assert {d.title: d.metadata["folder"] for d in docs(items).values()} == {"c1.txt": "Q4 Final", "c2.txt": "Q4 Final"}
    ds.edit(ws, q4.id, name="Q4 Reports")
    items, scoped_state = run(scoped.load(scoped_state))
    assert {"c1.txt", "c2.txt"} <= set(docs(items))  # (the run's first tree had no "Q4 Reports": a skip)
    assert run(scoped.load(scoped_state))[0] == []  # the tree names it now


def test_a_checkpoint_keeping_a_shared_folder_as_my_drives_root_has_it_named_and_its_files_read_once(
    sb: Sandbox,
) -> None:
    """An index built before My Drive's root was asked for may hold a "Shared with me" folder as
    the root (its files with no path): the next sync names it and reads its files again, once."""
    c = connector(sb)
    _, state = run(c.load(None))
    q4, (c1, c2) = shared_folder(sb)
    _, state = run(c.load(state))
    assert state is not None
    state = {**state, "folders": {**state["folders"], q4.id: [None, None]}}
    state.pop("root", None)  # as an inlet that did not ask wrote it
    items, state = run(c.load(state))
    assert {d.title: d.metadata["folder"] for d in docs(items).values()} == {
        "c1.txt": "Q4 Reports",
        "c2.txt": "Q4 Reports",
    }
    sb.faults.reset_counts()
    assert run(c.load(state))[0] == [] and sb.faults.count("drive:files.get") == 0


def test_live_ids_match_the_full_crawl(sb: Sandbox) -> None:
    c = connector(sb)
    items, _ = run(c.load(None))
    assert set(c.live_ids()) == {d.id for d in items if isinstance(d, Document)}


# --- push channels ----------------------------------------------------------------------------
def test_a_webhook_address_on_an_unverified_domain_is_a_config_error_and_the_schedule_goes_on(
    sb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Drive answers 401 push.webhookUrlUnauthorized to a channel whose address's domain the project
    has not verified: a configuration error naming the source and what to verify, not a refused
    credential; the source's events read as down and its ordinary sync still works."""
    from inlet.errors import WebhookNotVerifiedError
    from inlet.sandbox.drive_channels import channels
    from inlet.sync.events import EventLoop

    channels(sb.ctx).verified_domains = {"inlet.example.com"}
    c = connector(sb, push_url="http://127.0.0.1:9/hooks/google_drive/team-drive", shared_drives=False)
    events = c.events()
    assert events is not None
    with pytest.raises(WebhookNotVerifiedError) as refused:
        events.start(lambda hint: None)
    assert isinstance(refused.value, ConfigError) and not isinstance(refused.value, CredentialsError)
    message = str(refused.value)
    assert "'team-drive'" in message and "http://127.0.0.1:9/hooks/google_drive/team-drive" in message
    assert "domain is verified" in message and "push_url" in message and not events.held
    loop = EventLoop([("team-drive", "google_drive", events)], lambda name, scope: None)
    loop.start()
    loop.stop()
    assert not loop.report("team-drive")["live"]
    assert "domain is verified" in caplog.text and "the schedule still syncs it" in caplog.text
    assert docs(run(c.load(None))[0])  # polling is untouched: the credentials are good


def test_while_a_shared_drives_watch_fails_no_second_channel_is_opened_and_stop_closes_all(sb: Sandbox) -> None:
    """A shared drive's `changes.watch` failing (its backend in trouble) leaves the user's log's
    channel open and live-less events: starting again, and every renewal round meanwhile, opens
    only what is missing, never a second channel on the user's log; `stop()` closes every one."""
    from inlet.sandbox.drive_channels import channels

    chans = channels(sb.ctx)
    chans.open.clear()
    sb.faults.fail("drive", "changes.watch:drive", 503, times=1000)
    try:
        c = connector(sb, push_url="http://127.0.0.1:9/hooks/google_drive/team-drive", retries=1)
        events = c.events()
        assert events is not None
        for _ in range(3):  # the daemon's tries to start it, then its renewal rounds
            try:
                events.start(lambda hint: None)
            except InletError:
                pass
            events.maintain()
        assert [ch.drive_id for ch in chans.open.values()] == [None]  # the user's log's, once
        assert not events.live and "503" in events.reason
        events.stop()
        assert not chans.open
    finally:
        sb.faults.clear()


def test_push_messages_sent_before_the_watch_answers_are_accepted(sb: Sandbox) -> None:
    """Drive may post a new channel's `sync` and first `change` before `changes.watch` has answered;
    a channel's messages are refused once it is stopped."""
    c = connector(sb, push_url="http://127.0.0.1:9/hooks/google_drive/team-drive", shared_drives=False)
    events = c.events()
    assert events is not None
    answers: dict[str, int] = {}

    def post(channel: str, token: str) -> int:
        headers = {"x-goog-channel-id": channel, "x-goog-channel-token": token, "x-goog-resource-state": "change"}
        return events.webhook(WebhookRequest("POST", {}, headers, b"")).status

    def watch(page_token: str, channel: dict[str, Any], all_drives: bool, drive: str | None) -> dict[str, Any]:
        answers[channel["id"]] = post(channel["id"], channel["token"])  # Drive's message comes first
        return {"id": channel["id"], "resourceId": "r-" + channel["id"], "expiration": channel["expiration"]}

    c.client.watch_changes = watch  # type: ignore[method-assign]
    c.client.stop_channel = lambda channel_id, resource_id: None  # type: ignore[method-assign]
    hints: list[Hint] = []
    events.start(hints.append)
    first = events.channel.id
    assert first is not None and answers == {first: 200}
    assert [h.key for h in hints] == [f"{first}:", ""]  # its message, then the catch-up of a first channel
    events.channel.renew_now = True
    events.maintain()  # a new channel, then the old one stopped: no gap, no catch-up
    second = events.channel.id
    assert second != first and answers[str(second)] == 200 and len(hints) == 3
    assert post(first, events.token) == 404 and post(str(second), events.token) == 200


def test_a_channel_whose_sync_message_never_reaches_the_hook_reads_down_until_a_message_does(
    sb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Drive accepts any address: a `push_url` routed elsewhere (here, nothing listens) leaves the
    channel open and deaf. Its `sync` message not heard within SYNC_WAIT s reads as down, saying
    why (probe31f F2); the first message that reaches the hook makes it live again."""
    import time as _time

    from inlet.connectors.google_drive_events import SYNC_WAIT

    c = connector(sb, push_url="http://127.0.0.1:9/hooks/google_drive/other-drive", shared_drives=False)
    events = c.events()
    assert events is not None
    now = [_time.time()]
    events.renewals.clock = lambda: now[0]  # type: ignore[attr-defined]
    try:
        events.start(lambda hint: None)
        assert events.live  # Drive's sync message may still be on its way
        now[0] += SYNC_WAIT
        events.maintain()
        assert not events.live
        assert events.reason == (
            "Drive's sync message for the channel never reached /hooks/google_drive/team-drive: "
            "is push_url routed to this hook?"
        )
        events.channel.renew_now = True  # type: ignore[attr-defined]
        events.maintain()  # its replacement, to the same address, is not given the benefit of the doubt
        assert not events.live and "is push_url routed to this hook?" in events.reason
        assert caplog.text.count("is push_url routed to this hook?") == 1  # logged once
        channel = events.channel.id  # type: ignore[attr-defined]
        headers = {"x-goog-channel-id": channel, "x-goog-channel-token": events.token, "x-goog-resource-state": "sync"}
        assert events.webhook(WebhookRequest("POST", {}, headers, b"")).status == 200  # type: ignore[union-attr]
        events.maintain()
        assert events.live and not events.reason
    finally:
        events.stop()


# --- errors -----------------------------------------------------------------------------------
def test_rate_limits_and_server_errors_are_retried(sb: Sandbox) -> None:
    clean, _ = run(connector(sb).load(None))
    sb.faults.fail("drive", "files.list", 403, times=2, reason="userRateLimitExceeded")
    sb.faults.fail("drive", "files.export", 503, times=2)
    sb.faults.fail("drive", "files.get", 429, times=1, retry_after=0.01)
    sb.faults.fail("drive", "changes.getStartPageToken", 500, times=1)
    items, _ = run(connector(sb).load(None))
    assert docs(items) == docs(clean)
    assert sum(sb.faults.rejected.values()) == 6


def test_a_file_that_keeps_failing_is_a_failed_skip_and_the_run_goes_on(sb: Sandbox) -> None:
    clean = docs(run(connector(sb).load(None))[0])
    sb.faults.fail("drive", "files.export", 503, times=2)  # both tries of the first export
    items, _ = run(connector(sb, retries=1, concurrency=1).load(None))
    failed = [i for i in items if isinstance(i, Skipped) and i.failed]
    assert len(failed) == 1 and "503" in failed[0].reason and failed[0].title in clean
    assert set(docs(items)) == set(clean) - {failed[0].title}


def test_a_failed_read_of_a_crawl_is_not_read_again_in_the_same_run(sb: Sandbox) -> None:
    # the first: the shared drive's members (left unknown, read again at the end of the run)
    sb.faults.fail("drive", "permissions.list", 403, times=2, reason="forbidden")
    items, state = run(connector(sb, concurrency=1).load(None))
    failed = [i for i in items if isinstance(i, Skipped) and i.failed]
    assert len(failed) == 1 and failed[0].title not in docs(items)  # read once in this run
    assert state is not None and len(state["retries"]["failed"]) == 1  # and again by the next one
    again, state = run(connector(sb, concurrency=1).load(state))
    assert failed[0].title in docs(again) and state is not None and not state["retries"]["failed"]


def test_files_failing_in_a_row_are_an_outage_and_the_run_fails(sb: Sandbox) -> None:
    sb.faults.fail("drive", "files.export", 503, times=1000)
    with pytest.raises(RetriableError, match="503"):
        run(connector(sb, retries=0, concurrency=1).load(None))


@pytest.mark.parametrize("concurrency", [4, 1])
def test_files_that_failed_in_earlier_runs_and_fail_again_are_no_outage(sb: Sandbox, concurrency: int) -> None:
    """review34 F1: Drive reads a replayed file in its pool of threads, where the mark saying "a
    replay" was not seen: three files remembered as failed made every later run fail as an outage,
    freezing deletions and revoked sharing."""
    _, state = run(connector(sb).load(None))
    assert state is not None
    gdocs = sorted(
        (f for f in sb.ws.drive.files.values() if f.mime_type == "application/vnd.google-apps.document"),
        key=lambda f: f.id,
    )
    assert len(gdocs) >= 3
    state["retries"]["failed"] = {  # what three runs each failing one export left in the checkpoint
        f.id: {"id": f"team-drive:{f.id}", "reason": f"{f.name}: 503", "title": f.name, "attempts": 1}
        for f in gdocs[:3]
    }
    sb.faults.fail("drive", "files.export", 503, times=1000)  # they still fail
    items, after = run(connector(sb, retries=0, concurrency=concurrency).load(state))
    assert sorted(i.title or "" for i in items if isinstance(i, Skipped) and i.failed) == sorted(
        f.name for f in gdocs[:3]
    )
    assert after is not None and sorted(f["attempts"] for f in after["retries"]["failed"].values()) == [2, 2, 2]


def test_a_file_the_reader_may_only_view_is_indexed_for_the_readers_known(sb: Sandbox) -> None:
    someone = next(iter(sb.ws.users.values())).email
    sb.faults.fail("drive", "permissions.list", 403, times=1000, reason="insufficientFilePermissions")
    items, _ = run(connector(sb, subject=someone).load(None))
    assert not [i for i in items if isinstance(i, Skipped) and i.failed]
    calendar = docs(items)["Holiday calendar"]  # in a shared drive: Drive lists no sharing with it
    assert calendar.acl == ACL(users=[someone])  # never wider than its real sharing


def test_a_file_an_authorized_user_may_only_view_is_indexed_for_that_user(sb: Sandbox) -> None:
    """An authorized_user file does not say who granted it: Drive's about.get does, asked once a run,
    and only when a file's sharing is hidden; that user finds what was shared with them to view."""
    me = next(iter(sb.ws.users.values())).email
    drive_auth.auth(sb.ws).user_email = me
    c = connector(sb, "authorized_user", expand_groups=False)  # no directory: an authorized user is no admin
    _, state = run(c.load(None))
    assert sb.faults.count("drive:about.get") == 0  # every sharing readable: nobody asked
    sb.faults.fail("drive", "permissions.list", 403, times=1000, reason="insufficientFilePermissions")
    for name in ("Holiday calendar", "Expense policy.pdf"):  # in a shared drive: Drive lists no sharing with them
        ds.edit(sb.ws, file_named(sb, name).id, name=name + " (edited)")
    sb.faults.reset_counts()
    items, state = run(c.load(state))
    found = docs(items)
    assert set(found) == {"Holiday calendar (edited)", "Expense policy.pdf (edited)"}
    assert [d.acl for d in found.values()] == [ACL(users=[me])] * 2  # never wider than its real sharing
    assert sb.faults.count("drive:about.get") == 1  # once a run, whatever the files
    sb.faults.reset_counts()
    assert run(c.load(state))[0] == [] and sb.faults.count("drive:about.get") == 0  # nothing read: not asked


def test_when_drive_does_not_name_the_reader_view_only_files_are_indexed_for_their_owners(
    sb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """An about.get that fails past its retries is asked once a run, warned of once, and the view-only
    files are indexed as before it was asked: for their owners (none in a shared drive: admins only)."""
    drive_auth.auth(sb.ws).user_email = next(iter(sb.ws.users.values())).email
    c = connector(sb, "authorized_user", expand_groups=False, retries=1)
    _, state = run(c.load(None))
    sb.faults.fail("drive", "permissions.list", 403, times=1000, reason="insufficientFilePermissions")
    sb.faults.fail("drive", "about.get", 503, times=1000)
    for name in ("Holiday calendar", "Expense policy.pdf"):
        ds.edit(sb.ws, file_named(sb, name).id, name=name + " (edited)")
    sb.faults.reset_counts()
    with caplog.at_level("WARNING", logger="inlet"):
        items, _ = run(c.load(state))
    assert not [i for i in items if isinstance(i, Skipped) and i.failed]
    found = docs(items)
    assert set(found) == {"Holiday calendar (edited)", "Expense policy.pdf (edited)"}
    assert [d.acl for d in found.values()] == [ACL()] * 2
    assert sb.faults.count("drive:about.get") == 2  # one cycle of retries for the run, not one per file
    assert len([r for r in caplog.records if "whom the credentials read as" in r.getMessage()]) == 1


def test_retries_run_out_as_a_retriable_error(sb: Sandbox) -> None:
    sb.faults.fail("drive", "changes.*", 503, times=10)
    with pytest.raises(RetriableError):
        run(connector(sb, retries=2).load(None))


def test_only_a_retry_after_drive_sent_is_carried_by_the_error_of_retries_run_out(sb: Sandbox) -> None:
    """A 5xx without `Retry-After` asks for no wait: the run's `retry_after` stays null (inlet's
    own back-off decides), and `inlet status` shows no wait Drive never asked for."""
    sb.faults.fail("drive", "changes.*", 500, times=10, reason="backendError")
    with pytest.raises(RetriableError, match="kept answering 500") as info:
        connector(sb, retries=1).check()
    assert info.value.retry_after is None
    sb.faults.fail("drive", "changes.*", 503, times=10, retry_after=400)  # past the longest wait: fails at once
    with pytest.raises(RetriableError, match="kept answering 503") as info:
        connector(sb, retries=1).check()
    assert info.value.retry_after == 400


def test_expired_token_is_refreshed_once(sb: Sandbox) -> None:
    c = connector(sb)
    gen = c.load(None)
    head = [next(gen) for _ in range(4)]
    grants = drive_auth.auth(sb.ws).grants
    assert drive_auth.expire_tokens(sb.ws) >= 1
    items, _ = run(gen)
    assert drive_auth.auth(sb.ws).grants > grants
    assert len(docs(head + items)) == 13


def test_refused_credentials_raise_credentials_error(sb: Sandbox) -> None:
    c = connector(sb)
    run(c.load(None))
    drive_auth.revoke(sb.ws)
    with pytest.raises(CredentialsError, match="team-drive"):
        run(c.load(None))
    drive_auth.revoke(sb.ws, False)
    sb.faults.fail("drive", "changes.*", 401, times=10)  # refreshed, still refused: no loop
    with pytest.raises(CredentialsError, match="after a refresh"):
        connector(sb).check()
    assert sb.faults.rejected["drive:changes.getStartPageToken"] == 2


def test_a_token_endpoint_outage_is_retriable_not_refused_credentials(sb: Sandbox) -> None:
    # google-auth marks a 5xx (503 temporarily_unavailable) refresh failure retryable: past the
    # retries it is an outage to wait out, not credentials to fix (exit code 3).
    sb.faults.fail("drive", "token", 503, times=99)
    with pytest.raises(RetriableError, match="token endpoint kept failing") as info:
        connector(sb, retries=1).check()
    assert not isinstance(info.value, CredentialsError) and info.value.retry_after is None  # none was sent
    sb.faults.clear()
    drive_auth.revoke(sb.ws)  # 400 invalid_grant: refused, whatever the retries
    with pytest.raises(CredentialsError, match="invalid_grant"):
        connector(sb, retries=1).check()


def test_file_deleted_mid_sync_is_a_deletion(sb: Sandbox) -> None:
    sb.faults.fail("drive", "files.export", 404, times=1, reason="notFound")
    items, _ = run(connector(sb).load(None))
    deletions = [i for i in items if isinstance(i, Deletion)]
    # Exports run concurrently: whichever exported file met the 404 must come out as its deletion.
    assert len(deletions) == 1
    assert deletions[0].id not in docs(items)
    assert len(docs(items)) == 12
    assert not any(isinstance(i, Skipped) and i.failed for i in items)


def test_authorized_user_and_delegated_credentials(sb: Sandbox) -> None:
    items, _ = run(connector(sb, "authorized_user").load(None))
    assert len(docs(items)) == 13
    someone = next(iter(sb.ws.users.values())).email
    assert len(docs(run(connector(sb, subject=someone).load(None))[0])) == 13
    with pytest.raises(CredentialsError, match="Invalid email"):
        connector(sb, subject="stranger@elsewhere.org").check()
    with pytest.raises(ConfigError, match="subject"):
        connector(sb, "authorized_user", subject=someone).check()


def test_unreadable_credentials_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "creds.json"
    bad.write_text('{"type": "external_account"}')
    config = GoogleDriveConfig(name="d", type="google_drive", credentials_file=bad)
    with pytest.raises(ConfigError, match="credentials_file"):
        GoogleDriveConnector(config).check()
    config = GoogleDriveConfig(name="d", type="google_drive", credentials_file=tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="credentials_file"):
        GoogleDriveConnector(config).check()


def test_corrupt_pdf_in_changes_is_skipped_and_the_rest_goes_on(sb: Sandbox) -> None:
    c = connector(sb)
    _, state = run(c.load(None))
    ops = file_named(sb, "Operations").id
    ds.add_file(sb.ws, "bad.pdf", "application/pdf", b"garbage", parent=ops, owner="a@example.com")
    ds.add_file(
        sb.ws, "good.pdf", "application/pdf", make_pdf("Good", ["Readable text."]), parent=ops, owner="a@example.com"
    )
    items, _ = run(c.load(state))
    assert [type(i).__name__ for i in items] == ["Skipped", "Document"]
    assert "Readable text." in docs(items)["good.pdf"].text


def test_a_docs_images_are_left_out_of_its_markdown_text() -> None:
    from inlet.index.clean import without_embedded_data

    exported = (
        "# Plan\n\nThe chart ![][image1] and ![the logo](data:image/png;base64,iVBORw0KGgo=) below.\n\n"
        "[docs]: https://example.com\n\n[image1]: <data:image/png;base64,AAECAwQFBgcICQoL>\n"
    )
    text = without_embedded_data(exported)
    assert "base64" not in text and "data:" not in text
    assert "The chart  and the logo below." in text and "[docs]: https://example.com" in text


# --- shared drive members, refused requests, deleted drives, deleted accounts -----------------
def wiki(sb: Sandbox) -> ds.SharedDrive:
    return next(d for d in sb.ws.drive.drives.values() if d.name == "Company Wiki")


def test_a_shared_drives_member_removed_leaves_its_files_acls_without_a_re_read(sb: Sandbox) -> None:
    """Drive logs nothing when a shared drive's members change: each sync reads the members again,
    and a change gives the drive's indexed files their new ACL (`AclUpdate`: permissions read,
    no content downloaded)."""
    ws, c = sb.ws, connector(sb)
    ds.set_members(ws, wiki(sb).id, [*wiki(sb).members, ds.user_permission(ws, "bob@partner.example")])
    first, state = run(c.load(None))
    assert "bob@partner.example" in docs(first)["Holiday calendar"].acl.users
    ds.set_members(ws, wiki(sb).id, [p for p in wiki(sb).members if p.email != "bob@partner.example"])
    sb.faults.reset_counts()
    items, state2 = run(c.load(state))
    updates = {i.id: i.acl for i in items if isinstance(i, AclUpdate)}
    assert [i for i in items if not isinstance(i, AclUpdate)] == []
    assert set(updates) == {doc_id(sb, "Holiday calendar"), doc_id(sb, "Expense policy.pdf")}
    assert all("bob@partner.example" not in acl.users for acl in updates.values())
    assert updates[doc_id(sb, "Holiday calendar")].domains == [ws.domain]
    assert sb.faults.count("drive:files.get") == sb.faults.count("drive:files.export") == 0  # no content
    sb.faults.reset_counts()
    assert run(c.load(state2))[0] == []  # the new members are the checkpoint's: nothing to do
    assert sb.faults.count("drive:files.list") == 0


def test_a_drive_the_reader_is_no_member_of_has_its_removed_members_leave_the_acl_of_its_files_shared_directly(
    sb: Sandbox,
) -> None:
    """A shared drive's file shared with the reading identity, who is no member of the drive: Drive
    shows a writer its sharing, the drive's members among them, yet answers "not found" for the
    drive's own members. Its first such file's sharing is read each sync instead, and a change
    gives the drive's files shared so their new ACL; a file shared view-only shows no members."""
    ws, c, reader = sb.ws, connector(sb), drive_auth.CLIENT_EMAIL
    erin, frank = ds.user_permission(ws, "erin@example.com"), ds.user_permission(ws, "frank@example.com")
    finance = ds.add_drive(ws, "Finance Drive", [erin, frank], member=False)
    budget = ds.add_file(
        ws, "budget.txt", "text/plain", "Budget 2025.", drive_id=finance.id,
        permissions=[ds.user_permission(ws, reader, "writer")],
    )  # fmt: skip
    memo = ds.add_file(
        ws, "memo.txt", "text/plain", "Memo.", drive_id=finance.id, permissions=[ds.user_permission(ws, reader)]
    )
    ds.add_file(ws, "salaries.txt", "text/plain", "Not shared.", drive_id=finance.id)
    first, state = run(c.load(None))
    found = docs(first)
    assert "salaries.txt" not in found
    assert "shared_drive" not in found["budget.txt"].metadata  # a reader of it (the account) is no member
    assert found["budget.txt"].acl.users == ["erin@example.com", "frank@example.com", reader]
    assert found["memo.txt"].acl.users == [reader]  # its sharing is not shown to a reader
    ds.set_members(ws, finance.id, [erin])  # Drive logs nothing for the files
    sb.faults.reset_counts()
    items, state2 = run(c.load(state))
    assert items == [AclUpdate(id=f"team-drive:{budget.id}", acl=ACL(users=["erin@example.com", reader]))]
    assert sb.faults.count("drive:files.get") == 1  # its sharing read again (files.get, permissions.list), no content
    sb.faults.reset_counts()
    assert run(c.load(state2))[0] == []
    assert sb.faults.count("drive:permissions.list") == 2  # the member drive's members, budget.txt's sharing
    assert state2 is not None and state2["outside"] == {budget.id: finance.id} and memo.id in state2["known"]


def test_a_drive_left_keeps_its_files_shared_directly_and_their_acl_follows_its_members(sb: Sandbox) -> None:
    """The reading identity leaves a shared drive but keeps a direct share on one of its files:
    the drive's other files are deleted, that one stays, and a member removed from the drive
    later leaves its ACL at the next sync."""
    ws, c, reader = sb.ws, connector(sb), drive_auth.CLIENT_EMAIL
    hank = ds.user_permission(ws, "hank@example.com")
    ds.set_members(ws, wiki(sb).id, [*wiki(sb).members, hank])
    plan = ds.add_file(
        ws, "plan.txt", "text/plain", "Team plan.", parent=wiki(sb).id,
        permissions=[ds.user_permission(ws, reader, "writer")],
    )  # fmt: skip
    _, state = run(c.load(None))
    gone = {doc_id(sb, "Holiday calendar"), doc_id(sb, "Expense policy.pdf")}
    ds.leave_drive(ws, wiki(sb).id, keep_shared=True)
    items, state = run(c.load(state))
    assert {i.id for i in items if isinstance(i, Deletion)} == gone
    assert f"team-drive:{plan.id}" not in {i.id for i in items if isinstance(i, Deletion)}
    ds.set_members(ws, wiki(sb).id, [p for p in wiki(sb).members if p.email != "hank@example.com"])
    items, _ = run(c.load(state))
    updates = [i for i in items if isinstance(i, AclUpdate)]
    assert [u.id for u in updates] == [f"team-drive:{plan.id}"] and len(items) == 1
    assert "hank@example.com" not in updates[0].acl.users and reader in updates[0].acl.users


def test_a_persistent_400_of_the_change_log_fails_the_run_without_a_re_crawl(sb: Sandbox) -> None:
    """Only a refused page token falls back to a re-crawl: any other 400 (a parameter Drive or a
    proxy refuses) would be refused again after it, so the run fails with Drive's answer."""
    c = connector(sb)
    _, state = run(c.load(None))
    sb.faults.fail("drive", "changes.list", 400, times=50, reason="badRequest")
    sb.faults.reset_counts()
    with pytest.raises(DriveApiError, match="400 badRequest"):
        run(c.load(state))
    assert sb.faults.count("drive:files.list") == 0 and sb.faults.count("drive:changes.list") == 1


def test_a_token_refused_again_after_the_re_crawl_fails_the_run(sb: Sandbox) -> None:
    """A refused token re-crawls once a run: the fresh start token refused too fails the run."""
    ws, c = sb.ws, connector(sb)
    _, state = run(c.load(None))
    ds.edit(ws, file_named(sb, "runbook.txt").id, content="edited")
    ds.expire_page_tokens(ws)  # the saved token: refused (it is older than the edit)
    items = c.load(state)
    assert any(isinstance(i, Checkpoint) and i.state["phase"] == "crawl" for i in items)  # the re-crawl's
    ds.edit(ws, file_named(sb, "runbook.txt").id, content="edited")
    ds.expire_page_tokens(ws)  # ... which is refused in turn (it is older than the edit)
    with pytest.raises(DriveApiError, match="re-crawl this run made"):
        run(items)


def test_a_files_list_page_token_refused_twice_fails_the_run(sb: Sandbox) -> None:
    """The crawl restarts its listing once when Drive refuses its page token, not for ever."""
    ws = sb.ws
    items = connector(sb, page_size=2).load(None)
    expired = 0
    with pytest.raises(DriveApiError, match="files.list refused the page token"):
        for item in items:
            if isinstance(item, Checkpoint) and item.state.get("page_token") and expired < 3:
                ds.expire_page_tokens(ws)  # the next page's token is refused
                expired += 1
    assert expired == 2


def test_a_deleted_shared_drive_answering_404_is_dropped_and_the_rest_goes_on(sb: Sandbox) -> None:
    """The drive's log answers 404 before the user's log says it went: its documents are deleted,
    nothing else is read again."""
    ws, c = sb.ws, connector(sb)
    _, state = run(c.load(None))
    gone = {doc_id(sb, "Holiday calendar"), doc_id(sb, "Expense policy.pdf")}
    ds.leave_drive(ws, wiki(sb).id, logged=False)
    sb.faults.reset_counts()
    items, state2 = run(c.load(state))
    assert {i.id for i in items if isinstance(i, Deletion)} == gone and not docs(items)
    assert sb.faults.count("drive:files.export") == sb.faults.count("drive:files.get") == 0  # no re-crawl
    assert state2 is not None and state2["drives"] == {} and state2["drive_tokens"] == {}


def test_a_deleted_accounts_permission_grants_nothing(sb: Sandbox) -> None:
    ws = sb.ws
    gone = ds.user_permission(ws, "gone@example.com")
    gone.deleted = True
    f = file_named(sb, "runbook.txt")
    ds.set_permissions(ws, f.id, [ds.user_permission(ws, "kept@example.com"), gone])
    found = docs(run(connector(sb).load(None))[0])
    assert "kept@example.com" in found["runbook.txt"].acl.users
    assert "gone@example.com" not in found["runbook.txt"].acl.users
    ds.set_members(ws, wiki(sb).id, [*wiki(sb).members, gone])  # through permissions.list too
    assert "gone@example.com" not in docs(run(connector(sb).load(None))[0])["Holiday calendar"].acl.users


# --- Google Groups -------------------------------------------------------------------------------
ROADMAP_QUERY = "Q3 roadmap billing migration at risk"


@dataclass
class Indexed:
    """The sample drive synced by the engine into an index (vectors from the text: lexical search)."""

    sb: Sandbox
    settings: Settings
    index: Index
    state: SqliteState

    def run(self, kind: str = "sync") -> RunResult:
        result = Engine(self.settings, self.index, self.state).run("team-drive", kind)
        assert result.outcome == "ok", result.error
        return result

    def finds(self, user: str, doc_id: str) -> bool:
        """Whether `user`'s search for the roadmap finds `doc_id`."""
        request = SearchRequest(
            query=ROADMAP_QUERY, k=50, sources=("team-drive",), recency_half_life_days=0, mode="lexical", user=user
        )
        return doc_id in {hit.doc_id for hit in search(self.index, request)[0]}


@contextlib.contextmanager
def indexed(sb: Sandbox, tmp_path: Path, embedder: Any, **keys: Any) -> Iterator[Indexed]:
    creds = drive.write_credentials(sb.ctx, tmp_path / "service_account.json")
    source = {
        "name": "team-drive",
        "type": "google_drive",
        "credentials_file": str(creds),
        "api_endpoint": sb.ctx.http_url + "/drive/v3/",
        "backoff_seconds": 0.01,
        "max_requests_per_second": 0,
        **keys,
    }
    settings = parse_config({"index": {"path": str(tmp_path / "index")}, "sources": [source]})
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(tmp_path / "index" / "state.db")
        try:
            yield Indexed(sb, settings, index, state)
        finally:
            state.close()


def test_a_file_shared_with_a_group_is_found_by_its_members_and_by_nobody_else(
    sb: Sandbox, tmp_path: Path, text_hash_embedder: Any
) -> None:
    roadmap = doc_id(sb, "Q3 roadmap")  # shared with eng@ alone: bob, and carol through platform@ in it
    with indexed(sb, tmp_path, text_hash_embedder) as ix:
        ix.run("backfill")
        assert ix.finds("bob@example.com", roadmap)  # a member
        assert ix.finds("Carol@Example.com", roadmap)  # a member of a group inside the group
        assert ix.finds("eng@example.com", roadmap)  # the group's own address still reads it
        assert ix.finds("alice@example.com", roadmap)  # its owner
        assert not ix.finds("dave@example.com", roadmap)  # same domain, not in the group
        assert not ix.finds("platform@example.com", roadmap)  # the nested group is no permission
        assert recent_skips(ix.state, "team-drive") is None or not [
            s for s in recent_skips(ix.state, "team-drive")["items"] if "group" in str(s)
        ]


def test_a_membership_change_reaches_the_acl_at_the_next_sync_without_reading_or_embedding_the_file(
    sb: Sandbox, tmp_path: Path, text_hash_embedder: Any
) -> None:
    roadmap = doc_id(sb, "Q3 roadmap")
    with indexed(sb, tmp_path, text_hash_embedder) as ix:
        ix.run("backfill")
        assert ix.run().embedded == 0  # nothing changed: nothing re-written
        exports = sb.faults.count("drive:files.export")
        ds.set_group(sb.ws, "platform@example.com", [ds.GroupMember("dave@example.com")])  # carol leaves, dave joins
        ds.set_group(sb.ws, "eng@example.com", [ds.GroupMember("platform@example.com", "GROUP")])  # bob leaves
        result = ix.run()
        assert result.embedded == 0 and sb.faults.count("drive:files.export") == exports  # no content read
        assert ix.finds("dave@example.com", roadmap)
        assert not ix.finds("bob@example.com", roadmap) and not ix.finds("carol@example.com", roadmap)
        assert ix.finds("eng@example.com", roadmap)
        assert sb.faults.count("directory:members.list") >= 4  # every sync reads the groups again


@pytest.mark.parametrize("refusal", ["scope not delegated", "not an admin"])
def test_a_directory_that_cannot_be_read_leaves_the_group_address_and_a_notice_and_the_run_ok(
    sb: Sandbox, tmp_path: Path, text_hash_embedder: Any, refusal: str
) -> None:
    roadmap = doc_id(sb, "Q3 roadmap")
    if refusal == "scope not delegated":  # the Admin console granted the client Drive's scope alone
        drive_auth.auth(sb.ws).delegated_scopes = {"https://www.googleapis.com/auth/drive.readonly"}
        hint = "admin.directory.group.member.readonly"
    else:  # the impersonated user is no admin: the directory answers 403
        hint = "Not Authorized to access this resource/api"
    with indexed(sb, tmp_path, text_hash_embedder, subject="alice@example.com") as ix:
        ix.run("backfill")  # `run` asserts the outcome is ok
        assert ix.finds("eng@example.com", roadmap) and not ix.finds("bob@example.com", roadmap)
        skips = recent_skips(ix.state, "team-drive")
        assert skips is not None
        notices = [s for s in skips["items"] if "eng@example.com" in str(s)]
        assert len(notices) == 1 and hint in str(notices[0]), skips  # once, naming the group and why
        ix.run()
        sb.ws.drive.directory_admins.add("alice@example.com")
        drive_auth.auth(sb.ws).delegated_scopes = None  # granted now: the next sync expands the group
        ix.run()
        assert ix.finds("bob@example.com", roadmap) and ix.finds("carol@example.com", roadmap)


def test_a_checkpoint_from_before_groups_were_expanded_has_its_acls_read_again_once(sb: Sandbox) -> None:
    ds.set_group(
        sb.ws, "eng@example.com", [ds.GroupMember(f"m{n:03}@example.com") for n in range(250)]
    )  # two pages of members.list
    c = connector(sb, expand_groups=False)
    items, state = run(c.load(None))
    assert docs(items)["Q3 roadmap"].acl.users == ["alice@example.com", "eng@example.com"]
    assert sb.faults.count("directory:*") == 0  # expansion off: the directory is never read
    assert state is not None
    old = {k: v for k, v in state.items() if k not in ("shared", "groups")} | {"version": 1}
    c = connector(sb)
    items, state = run(c.load(old))
    updates = {i.id: i.acl for i in items if isinstance(i, AclUpdate)}
    assert len(updates) == 13 and not docs(items)  # every indexed file's sharing read again, no content
    users = updates[doc_id(sb, "Q3 roadmap")].users
    assert len(users) == 252 and "m249@example.com" in users and "eng@example.com" in users
    items, _ = run(c.load(state))
    assert not [i for i in items if isinstance(i, AclUpdate)]  # once


def test_a_shared_drive_whose_member_is_a_group_is_read_by_the_groups_members(sb: Sandbox) -> None:
    ws, c = sb.ws, connector(sb)
    ds.set_members(ws, wiki(sb).id, [ds.user_permission(ws, "eng@example.com", "reader", "group")])
    first, state = run(c.load(None))
    in_the_drive = {doc_id(sb, "Holiday calendar"), doc_id(sb, "Expense policy.pdf")}
    for doc in [d for d in first if isinstance(d, Document) and d.id in in_the_drive]:
        assert {"bob@example.com", "carol@example.com", "eng@example.com"} <= set(doc.acl.users)
    ds.set_group(ws, "platform@example.com", [])  # carol leaves the group nested in eng@
    sb.faults.reset_counts()
    items, _ = run(c.load(state))
    updates = {i.id: i.acl for i in items if isinstance(i, AclUpdate)}
    assert set(updates) == {*in_the_drive, doc_id(sb, "Q3 roadmap")} and not docs(items)  # all naming eng@
    assert all("carol@example.com" not in acl.users and "bob@example.com" in acl.users for acl in updates.values())
    assert sb.faults.count("drive:files.export") == 0


def test_a_folder_or_shared_drive_is_named_only_to_readers_who_may_open_it(sb: Sandbox) -> None:
    """Drive shows a file shared into a folder (or shared drive) its reader may not open under
    "Shared with me", without the location: its document names no folder that some reader of it
    may not open, nor such a drive; the `folders` filter still selects it by that folder."""
    ws, dom = sb.ws, sb.ws.domain
    hamza, bob = f"hamza@{dom}", f"bob@{dom}"
    secret = ds.add_file(ws, "Layoffs 2027", ds.FOLDER, owner=hamza)  # nobody else may open it
    ds.add_file(ws, "desk.txt", "text/plain", "Desk 4F.", parent=secret.id, owner=hamza,
                permissions=[ds.user_permission(ws, bob)])  # fmt: skip
    theirs = ds.add_file(ws, "Bob's corner", ds.FOLDER, parent=secret.id, owner=hamza,
                         permissions=[ds.user_permission(ws, bob)])  # fmt: skip
    ds.add_file(ws, "chair.txt", "text/plain", "Chair 2.", parent=theirs.id, owner=hamza,
                permissions=[ds.user_permission(ws, bob)])  # fmt: skip
    ds.add_file(ws, "own.txt", "text/plain", "Mine.", parent=theirs.id, owner=hamza)  # hamza's alone
    deal = ds.add_drive(ws, "M&A - Project Wobble", [ds.user_permission(ws, hamza, "organizer")])
    ds.add_file(ws, "memo.txt", "text/plain", "Memo.", parent=deal.id, owner=hamza,
                permissions=[ds.user_permission(ws, bob)])  # fmt: skip
    ds.add_file(ws, "plan.txt", "text/plain", "Plan.", parent=deal.id, owner=hamza)  # the members' own
    items, state = run(connector(sb).load(None))
    got = {t: (d.metadata["folder"], d.metadata.get("shared_drive")) for t, d in docs(items).items()}
    assert got["desk.txt"] == ("", None)
    assert got["chair.txt"] == ("…/Bob's corner", None)  # he may open his folder, not the one above
    assert got["own.txt"] == ("Layoffs 2027/Bob's corner", None)  # its one reader may open both
    assert got["memo.txt"] == ("", None)  # a non-member is not told the drive's name
    assert got["plan.txt"] == ("M&A - Project Wobble", "M&A - Project Wobble")
    for d in docs(items).values():
        if bob in d.acl.users:
            assert "Layoffs" not in str(d.metadata) and "Wobble" not in str(d.metadata), d.title
    # the filter selects by the whole path, whatever the documents show
    scoped, _ = run(connector(sb, folders=["Layoffs 2027"]).load(None))
    assert set(docs(scoped)) == {"desk.txt", "chair.txt", "own.txt"}
    # a checkpoint whose folder map kept no sharing (an earlier version's) reads it before it names
    assert state is not None
    state["folders"] = {k: v[:2] for k, v in state["folders"].items()}
    ds.edit(ws, file_named(sb, "desk.txt").id, content="Desk 5F.")
    ds.edit(ws, file_named(sb, "own.txt").id, content="Still mine.")
    changed, _ = run(connector(sb).load(state))
    assert {t: d.metadata["folder"] for t, d in docs(changed).items()} == {
        "desk.txt": "",
        "own.txt": "Layoffs 2027/Bob's corner",
    }


# --- deletions while a listing is under way ------------------------------------------------------
class MidCrawlEngine(Engine):
    """The real engine; `at_page(listed)` runs as each files.list page's checkpoint of a crawl passes
    by (`listed`: the files the pages so far held), before the connector asks for the next page."""

    at_page: Any = staticmethod(lambda listed: None)

    def connector(self, name: str, env: Any = None) -> Any:
        conn = super().connector(name, env)
        load = conn.load

        def watched(checkpoint: dict[str, Any] | None, *, since: Any = None) -> Iterator[Item]:
            for item in load(checkpoint, since=since):
                yield item
                if isinstance(item, Checkpoint) and item.state["phase"] == "crawl" and item.state["page_token"]:
                    self.at_page(item.state["listed"])

        conn.load = watched
        return conn


def listing_order(sb: Sandbox) -> list[ds.DriveFile]:
    """The files a crawl lists, in its order (the sandbox's)."""
    return [f for f in sb.ws.drive.files.values() if f.mime_type != ds.FOLDER and not f.trashed]


@pytest.mark.parametrize("stopped", [False, True], ids=["uninterrupted", "stopped-and-resumed"])
def test_files_deleted_during_a_re_crawl_take_no_unchanged_file_out_of_the_index(
    sb: Sandbox, tmp_path: Path, text_hash_embedder: Any, stopped: bool
) -> None:
    """Finding 35c-1: two files of the first page deleted once it is read move every later file up
    two places in the listing, so the next page token (an offset) passes over two unchanged files;
    the pass must not take them for deleted (its prune asks Drive about what it did not list)."""
    with indexed(sb, tmp_path, text_hash_embedder, page_size=3) as ix:
        ix.run("backfill")
        before = set(ix.index.catalog.source_doc_ids("team-drive"))
        doomed = [f.id for f in listing_order(sb)[:2]]
        assert {f"team-drive:{d}" for d in doomed} <= before
        engine = MidCrawlEngine(ix.settings, ix.index, ix.state)

        def delete_once(listed: int) -> None:
            if listed == 3 and doomed[0] in sb.ws.drive.files:
                for native in doomed:
                    ds.delete(sb.ws, native)
                if stopped:
                    engine.stop.set()  # the run ends at its next checkpoint, one more page on

        engine.at_page = delete_once
        result = engine.run("team-drive", "backfill")
        if stopped:
            assert result.outcome == "interrupted"
            result = MidCrawlEngine(ix.settings, ix.index, ix.state).run("team-drive", "backfill")
        assert result.outcome == "ok", result.error
        assert result.deleted == 2
        after = set(ix.index.catalog.source_doc_ids("team-drive"))
        assert after == before - {f"team-drive:{d}" for d in doomed}
        known = ix.state.source("team-drive").checkpoint["known"]  # the files passed over are tracked too
        assert {f"team-drive:{n}" for n in known} == after


def test_files_deleted_during_a_reconciling_re_crawl_delete_no_unchanged_file(sb: Sandbox) -> None:
    """A refused change token's re-crawl deletes what was known before it and is not listed now:
    only what Drive confirms gone, not the files the deletions moved past its next page token."""
    ws, c = sb.ws, connector(sb, page_size=3)
    _, state = run(c.load(None))
    doomed = [f.id for f in listing_order(sb)[:2]]
    ds.edit(ws, file_named(sb, "runbook.txt").id, content="edited: the saved change token is older")
    ds.expire_page_tokens(ws)  # the saved change token is refused: a re-crawl reconciling with `prev`
    items = []
    for item in c.load(state):
        items.append(item)
        if isinstance(item, Checkpoint) and item.state["page_token"] and item.state["listed"] == 3:
            if doomed[0] in ws.drive.files:
                for native in doomed:
                    ds.delete(ws, native)
    deleted = {i.id for i in items if isinstance(i, Deletion)}
    assert deleted == {f"team-drive:{d}" for d in doomed}
