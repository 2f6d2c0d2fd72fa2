"""The microsoft_files connector against the sandbox's Graph files API (real msal + httpx over HTTPS)."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from inlet.connectors.kit.retry import RetryPolicy
from inlet.connectors.kit.transport import ssl_context
from inlet.connectors.microsoft_files import MicrosoftFilesConfig, MicrosoftFilesConnector
from inlet.connectors.model import Checkpoint, Deletion, Document, Skipped
from inlet.errors import AccessRefusedError, CredentialsError, NothingInScopeError, RetriableError
from inlet.sandbox import graph_files
from inlet.sandbox.graph_files_seed import perm
from inlet.sandbox.graph_files_state import FilesState, Item
from inlet.sandbox.server import Sandbox

ENGINEERING = ["abilinski@example.com", "doubledeez@example.com", "hamza@example.com"]  # hamza: nested group


def connector(sb: Sandbox, sleeps: list[float] | None = None, **overrides: Any) -> MicrosoftFilesConnector:
    block, env = graph_files.source(sb.ctx, sb.ctx.workdir)
    config = tomllib.loads(block)["sources"][0] | overrides
    waits = sleeps if sleeps is not None else []
    return MicrosoftFilesConnector(
        MicrosoftFilesConfig(**config), env, policy=RetryPolicy(sleep=waits.append, jitter=0)
    )


def run(conn: MicrosoftFilesConnector, checkpoint: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any]]:
    items = list(conn.load(checkpoint))
    assert isinstance(items[-1], Checkpoint)
    return items, items[-1].state


def docs(items: list[Any]) -> dict[str, Document]:
    return {i.metadata["path"]: i for i in items if isinstance(i, Document)}


def deleted(items: list[Any]) -> set[str]:
    return {i.id for i in items if isinstance(i, Deletion)}


def state(sb: Sandbox) -> FilesState:
    return graph_files.files_state(sb.ws)


def item(sb: Sandbox, name: str) -> Item:
    return next(i for i in state(sb).items.values() if i.name == name and not i.deleted)


def doc_id(sb: Sandbox, name: str) -> str:
    return f"sandbox-files:{item(sb, name).id}"


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def backfill(shared: Sandbox) -> tuple[list[Any], dict[str, Any]]:
    return run(connector(shared))


def test_backfill_reads_every_library_and_onedrive_with_text(backfill: Any) -> None:
    got = docs(backfill[0])
    assert set(got) == {
        "Design/Search design.docx",
        "Design/Architecture.pdf",
        "Runbooks/oncall.md",
        "Budget 2024.xlsx",
        "Leadership/Reorg plan.txt",
        "API spec.html",
        "Roadmap.pptx",
        "Forecast.xlsx",
        "Expense FAQ.md",
        "Notes.txt",
        "Offsite plan.docx",
    }
    ids = [i.id for i in backfill[0] if isinstance(i, Document)]
    assert len(ids) == len(set(ids))
    budget = got["Budget 2024.xlsx"]
    assert budget.title == "Engineering budget 2024"
    assert "Search | 6 | 1200000" in budget.text and "## Notes" in budget.text
    assert got["API spec.html"].title == "Search API specification"
    assert got["Design/Search design.docx"].metadata == {
        "drive": "Documents",
        "site": "Engineering",
        "path": "Design/Search design.docx",
        "mime_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
    assert got["Notes.txt"].metadata["drive"] == "OneDrive" and got["Notes.txt"].url.startswith("https://")
    skipped = [i for i in backfill[0] if isinstance(i, Skipped)]
    assert [(s.failed, "logo.png: unsupported type" in s.reason) for s in skipped] == [(False, True)]


def test_acl_follows_inherited_group_link_and_user_permissions(backfill: Any) -> None:
    got = docs(backfill[0])
    design = got["Design/Search design.docx"].acl  # inherited site group -> Entra group, nested group
    assert design.users == ENGINEERING and not design.public and not design.domains
    runbook = got["Runbooks/oncall.md"].acl  # + an organization link
    assert runbook.users == ENGINEERING and runbook.domains == ["example.com", "sandbox.onmicrosoft.com"]
    assert got["Leadership/Reorg plan.txt"].acl.users == ["abilinski@example.com"]  # inheritance broken
    assert got["Expense FAQ.md"].acl.public  # anonymous link
    assert got["Forecast.xlsx"].acl.users == ["john.arnold@enron.com", "phillip.allen@enron.com"]
    assert got["Offsite plan.docx"].acl.users == ["abilinski@example.com", "doubledeez@example.com"]


@pytest.mark.parametrize("identities", ["login", "id"])
def test_users_named_without_an_email_get_their_access(sb: Sandbox, identities: str) -> None:
    """Graph documents only `id` and `displayName` on a user identity: the address comes from the
    `siteUser`'s claims login, or from `GET /users/{id}` (each user once per sync)."""
    st = state(sb)
    with sb.ws.lock:
        st.identities = identities
        st.share(item(sb, "Forecast.xlsx").id, perm(link="users", user="carol@example.com"))  # specific people
    sb.faults.reset_counts()
    got = docs(run(connector(sb))[0])
    assert got["Leadership/Reorg plan.txt"].acl.users == ["abilinski@example.com"]
    assert got["Offsite plan.docx"].acl.users == ["abilinski@example.com", "doubledeez@example.com"]
    assert got["Forecast.xlsx"].acl.users == ["carol@example.com", "john.arnold@enron.com", "phillip.allen@enron.com"]
    assert sb.faults.calls["graph:users"] == (3 if identities == "id" else 0)


def test_reading_users_by_id_without_the_permission_names_it(sb: Sandbox) -> None:
    with sb.ws.lock:
        state(sb).identities = "id"
    sb.faults.fail("graph", "users", 403, times=100, reason="Authorization_RequestDenied")
    with pytest.raises(AccessRefusedError, match="needs User.Read.All") as refused:
        run(connector(sb))
    assert str(refused.value).startswith("source 'sandbox-files': ") and "GET /users/" in str(refused.value)


def test_a_user_graph_no_longer_finds_grants_nobody(sb: Sandbox) -> None:
    with sb.ws.lock:
        state(sb).identities = "id"
        gone = sb.ws.user_by_email("doubledeez@example.com")
        assert gone is not None
        gone.deleted = True
    got = docs(run(connector(sb))[0])
    assert got["Offsite plan.docx"].acl.users == ["abilinski@example.com"]


def test_an_unchanged_tenant_costs_one_delta_call_per_drive_and_no_downloads(shared: Sandbox, backfill: Any) -> None:
    shared.faults.reset_counts()
    items, _ = run(connector(shared), backfill[1])
    assert [i for i in items if not isinstance(i, Checkpoint)] == []
    calls = shared.faults.calls
    assert calls["graph:delta"] == 4  # Documents, Specs, Finance Documents, a OneDrive
    assert calls["graph:content"] == calls["graph:download"] == calls["graph:permissions"] == 0
    assert calls["graph:batch"] == 2  # the drives, then group members and domains


def test_edits_deletions_and_moves_out_of_scope(sb: Sandbox) -> None:
    conn = connector(sb, include=["Design/**", "Runbooks/**", "Expense FAQ.md"])
    items, cp = run(conn)
    assert set(docs(items)) == {
        "Design/Search design.docx",
        "Design/Architecture.pdf",
        "Runbooks/oncall.md",
        "Expense FAQ.md",
    }
    st = state(sb)
    with sb.ws.lock:
        st.edit_item(item(sb, "oncall.md").id, data=b"# On-call runbook\n\nEscalate to the duty manager.\n")
        gone = doc_id(sb, "Expense FAQ.md")
        st.delete_item(item(sb, "Expense FAQ.md").id)
        pdf = doc_id(sb, "Architecture.pdf")
        moved = item(sb, "Architecture.pdf")
        st.edit_item(moved.id, parent_id=st.drives[moved.drive_id].root_id)
        st.add_item(
            item(sb, "oncall.md").drive_id,
            item(sb, "Runbooks").id,
            "backup.md",
            b"# Backups\n\nNightly.",
            "text/markdown",
        )
    items, cp = run(conn, cp)
    assert set(docs(items)) == {"Runbooks/oncall.md", "Runbooks/backup.md"}
    assert "Escalate to the duty manager." in docs(items)["Runbooks/oncall.md"].text
    assert deleted(items) == {gone, pdf}
    with sb.ws.lock:  # a renamed folder: its files leave the globs without appearing in delta themselves
        st.edit_item(item(sb, "Runbooks").id, name="Old runbooks")
    items, cp = run(conn, cp)
    assert deleted(items) == {doc_id(sb, "oncall.md"), doc_id(sb, "backup.md")} and not docs(items)
    with sb.ws.lock:
        st.edit_item(item(sb, "Old runbooks").id, name="Runbooks")
    items, _ = run(conn, cp)
    assert set(docs(items)) == {"Runbooks/oncall.md", "Runbooks/backup.md"} and not deleted(items)


def test_an_include_glob_matching_no_file_is_a_skip_and_none_matching_refuses_the_run(shared: Sandbox) -> None:
    conn = connector(shared, include=["Design/**", "Desing/**"])
    items, cp = run(conn)
    skip = "key 'include': no file path matches 'Desing/**' (closest: 'Design/**'"
    (found,) = [s for s in items if isinstance(s, Skipped) and not s.failed]
    assert found.title == "include = 'Desing/**'" and found.reason.startswith(skip)
    assert docs(items) and all(path.startswith("Design/") for path in docs(items))
    again, _ = run(conn, cp)  # a sync with nothing new says so too
    assert [s.reason for s in again if isinstance(s, Skipped)] == [found.reason]
    for read in (run, lambda c: list(c.live_ids())):  # nothing indexed, nothing pruned
        with pytest.raises(NothingInScopeError, match="'Desing/\\*\\*' \\(closest: 'Design/\\*\\*'"):
            read(connector(shared, include=["Desing/**"]))


def test_a_file_listed_before_its_new_folder_gets_its_path_when_the_folder_comes(sb: Sandbox) -> None:
    # Delta gives each item's latest state in no parent-first order: a folder renamed after a file
    # was put in it comes after the file, here on a later page.
    conn = connector(sb, include=["Specs/**", "Design/**"], page_size=1)  # alone, Specs/** would match nothing yet
    _, cp = run(conn)
    st = state(sb)
    with sb.ws.lock:
        drive = item(sb, "Runbooks").drive_id
        drafts = st.add_item(drive, None, "Drafts", folder=True)
        st.add_item(drive, drafts.id, "design.md", b"# Design\n\nThe walrus cache.", "text/markdown")
        st.edit_item(drafts.id, name="Specs")
    items, cp = run(conn, cp)
    assert set(docs(items)) == {"Specs/design.md"}
    assert conn.live_ids() and doc_id(sb, "design.md") in set(conn.live_ids())


def test_permission_and_membership_changes_rewrite_the_acl_not_the_text(sb: Sandbox) -> None:
    conn = connector(sb)
    items, cp = run(conn)
    before = docs(items)
    st = state(sb)
    with sb.ws.lock:
        st.share(item(sb, "Notes.txt").id, perm(user="bob@example.com"))
    items, cp = run(conn, cp)
    assert set(docs(items)) == {"Notes.txt"} and not deleted(items)
    notes = docs(items)["Notes.txt"]
    assert notes.acl.users == ["abilinski@example.com", "bob@example.com"]
    assert notes.content_hash() == before["Notes.txt"].content_hash()  # the index re-writes only the ACL
    with sb.ws.lock:  # a new member of the nested group reaches every Engineering file
        platform = next(g for g in st.groups.values() if g.name == "Platform Team")
        platform.members.append("carol@example.com")
    items, cp = run(conn, cp)
    changed = docs(items)
    assert set(changed) == {p for p, d in before.items() if "hamza@example.com" in d.acl.users}
    for path, doc in changed.items():
        assert "carol@example.com" in doc.acl.users and doc.content_hash() == before[path].content_hash()
    with sb.ws.lock:  # breaking inheritance on a folder re-shares everything below it
        st.share(item(sb, "Design").id, perm(user="hamza@example.com"), unique=True)
    items, _ = run(conn, cp)
    assert {p: d.acl.users for p, d in docs(items).items()} == {
        "Design/Search design.docx": ["hamza@example.com"],
        "Design/Architecture.pdf": ["hamza@example.com"],
    }


def test_an_expired_delta_link_relists_once_and_finds_deletions(sb: Sandbox) -> None:
    conn = connector(sb)
    items, cp = run(conn)
    st = state(sb)
    with sb.ws.lock:
        gone = doc_id(sb, "Roadmap.pptx")
        st.delete_item(item(sb, "Roadmap.pptx").id)
        st.expire_delta_tokens()
    sb.faults.reset_counts()
    items, cp = run(conn, cp)
    assert deleted(items) == {gone}
    assert not docs(items), "unchanged files are not yielded again after a re-listing"
    assert sb.faults.calls["graph:content"] == 0
    items, _ = run(conn, cp)
    assert [i for i in items if not isinstance(i, Checkpoint)] == []


def test_throttling_waits_retry_after_on_calls_and_inside_batches(sb: Sandbox) -> None:
    sleeps: list[float] = []
    sb.faults.fail("graph", "delta", 429, times=2, retry_after=7)
    sb.faults.fail("graph", "permissions", 429, times=1, retry_after=3)
    sb.faults.fail("graph", "download", 503, times=1, retry_after=2)
    items, _ = run(connector(sb, sleeps))
    assert len(docs(items)) == 11
    assert sleeps.count(7) == 2 and 3 in sleeps and 2 in sleeps


def test_a_file_whose_download_keeps_failing_is_a_failed_skip_named_by_its_path(sb: Sandbox) -> None:
    """probe33a F4: one file whose download answers 500 after every retry (a damaged SharePoint file)
    is that file's failed skip, named by its path and the call; the other files are indexed, and a
    later run still applies deletions (a freeze would keep a removed file searchable)."""
    conn = connector(sb)
    _, cp = run(conn)
    st = state(sb)
    with sb.ws.lock:
        faq = item(sb, "Expense FAQ.md")
        broken = st.add_item(faq.drive_id, faq.parent_id, "Broken.txt", b"damaged", "text/plain")
        gone = doc_id(sb, "Expense FAQ.md")
        st.delete_item(faq.id)
        st.edit_item(item(sb, "Notes.txt").id, data=b"Personal notes: the review moved to Friday.")
    where = f"*/items/{broken.id}/content"
    sb.faults.fail("graph", "content", 500, times=1000, reason="generalException", target=where)
    items, cp = run(conn, cp)
    assert set(docs(items)) == {"Notes.txt"} and deleted(items) == {gone}
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and skip.id == f"sandbox-files:{broken.id}" and skip.title == "Broken.txt"
    assert skip.reason.startswith("Broken.txt: GET /drives/") and "/content: download answered 500" in skip.reason
    assert "generalException" in skip.reason
    sb.faults.clear()
    items, _ = run(conn, cp)  # remembered: read again by the next run
    assert set(docs(items)) == {"Broken.txt"} and not [i for i in items if isinstance(i, Skipped)]


def test_files_that_failed_in_earlier_runs_and_fail_again_are_no_outage(sb: Sandbox) -> None:
    """probe34a N1: three broken files anywhere in a drive (one more each run) made every later run
    fail: their replays, read back to back first, counted as three reads in a row, so deletions and
    revoked permissions were never applied again. Replays of known failures are not counted."""
    conn = connector(sb)
    _, cp = run(conn)
    faq = item(sb, "Expense FAQ.md")
    for n in range(3):  # one more broken file each run, read among the run's other changes
        with sb.ws.lock:
            broken = state(sb).add_item(faq.drive_id, faq.parent_id, f"Broken{n}.txt", b"damaged", "text/plain")
        sb.faults.fail(
            "graph", "content", 500, times=1000, reason="generalException", target=f"*/items/{broken.id}/content"
        )
        items, cp = run(conn, cp)
        assert sorted(i.title for i in items if isinstance(i, Skipped) and i.failed) == [
            f"Broken{k}.txt" for k in range(n + 1)
        ]
    gone = doc_id(sb, "Expense FAQ.md")
    with sb.ws.lock:
        state(sb).delete_item(faq.id)
    items, cp = run(conn, cp)  # nothing new fails: the three replays fail again, the deletion is applied
    assert deleted(items) == {gone}
    assert len([i for i in items if isinstance(i, Skipped) and i.failed]) == 3


def test_a_file_a_renamed_folder_rechecks_that_keeps_failing_is_a_failed_skip(sb: Sandbox) -> None:
    """A renamed folder's files are read again (`$batch`); one answering 500 after every retry is its
    failed skip, read again by the next run, and the others take the new path."""
    conn = connector(sb)
    _, cp = run(conn)
    design = item(sb, "Search design.docx")
    with sb.ws.lock:
        state(sb).edit_item(item(sb, "Design").id, name="Designs")
    sb.faults.fail("graph", "item", 500, times=1000, reason="generalException", target=f"*/items/{design.id}")
    items, cp = run(conn, cp)
    assert set(docs(items)) == {"Designs/Architecture.pdf"}
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and skip.id == f"sandbox-files:{design.id}" and skip.title == "Search design.docx"
    assert skip.reason.startswith(f"Search design.docx: GET /drives/{design.drive_id}/items/{design.id}: 500")
    sb.faults.clear()
    items, _ = run(conn, cp)
    assert set(docs(items)) == {"Designs/Search design.docx"}


def test_downloads_failing_in_a_row_are_an_outage_and_the_run_fails_naming_the_call(sb: Sandbox) -> None:
    sb.faults.fail("graph", "content", 503, times=1000, reason="serviceNotAvailable")
    outage = (
        "^source 'sandbox-files': 3 reads in a row kept answering server errors after their retries, the "
        "last of .*: GET /drives/.*/content: download answered 503 serviceNotAvailable"
    )
    with pytest.raises(RetriableError, match=outage):
        run(connector(sb))


def test_a_retry_after_of_minutes_is_waited_out_in_full(sb: Sandbox) -> None:
    """Retrying before Graph's Retry-After ends meets the throttle again: the whole wait is slept."""
    sleeps: list[float] = []
    sb.faults.fail("graph", "delta", 429, times=2, retry_after=120)
    sb.faults.fail("graph", "permissions", 429, times=1, retry_after=200)  # inside a $batch
    items, _ = run(connector(sb, sleeps))
    assert len(docs(items)) == 11
    assert sleeps.count(120) == 2 and 200 in sleeps


def test_a_tenant_wide_rate_limit_is_waited_out() -> None:
    """Graph's per-app/per-tenant limits: past 15 calls a (scaled) minute every call is a 429 whose
    Retry-After says when the window frees up; the kit waits it out and the backfill completes."""
    import time

    with Sandbox(time_scale=60) as sandbox:
        sandbox.faults.rate_limit("graph", "*", 15)
        block, env = graph_files.source(sandbox.ctx, sandbox.ctx.workdir)
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        conn = MicrosoftFilesConnector(
            MicrosoftFilesConfig(**tomllib.loads(block)["sources"][0]),
            env,
            policy=RetryPolicy(sleep=sleep, jitter=0, attempts=20, deadline=120),
        )
        items, _ = run(conn)
        assert len(docs(items)) == 11 and not [i for i in items if isinstance(i, Skipped) and i.failed]
        assert sum(sandbox.faults.rejected.values()) > 0 and waits and max(waits) <= 1.0


def test_a_site_the_app_may_not_read_is_a_named_error_and_the_others_go_on(sb: Sandbox) -> None:
    conn = connector(sb)
    items, cp = run(conn)
    engineering = next(s.id for s in state(sb).sites.values() if s.name == "Engineering")
    graph_files.select_sites(sb.ws, [engineering])  # Sites.Selected, granted Engineering only
    items, kept = run(conn, cp)
    refused = {s.id: s for s in items if isinstance(s, Skipped)}
    finance = refused["sandbox-files:site:sandbox.sharepoint.com:/sites/Finance"]
    assert finance.failed and "Finance" in finance.reason and "/permissions" in finance.reason
    assert "sandbox-files:user:abilinski@example.com" in refused  # OneDrives are not granted either
    assert not deleted(items), "documents of a refused site are kept"
    ours = set(state(sb).sites[engineering].drive_ids)  # the change events watch only these now
    assert set(conn.checkpoint_resources(kept)) == ours < set(conn.checkpoint_resources(cp))
    assert conn.checkpoint_resources(kept)[min(ours)] == f"/drives/{min(ours)}/root"
    fresh, _ = run(conn)
    assert {d.metadata["site"] for d in docs(fresh).values()} == {"Engineering"}


def test_files_over_max_file_mb_are_skipped_by_policy(sb: Sandbox) -> None:
    items, _ = run(connector(sb, max_file_mb=0.002))
    big = [s for s in items if isinstance(s, Skipped) and "max_file_mb" in s.reason]
    assert big and all(not s.failed for s in big)
    assert "Notes.txt" in docs(items) and "Search design.docx" not in {p.rsplit("/")[-1] for p in docs(items)}


def test_a_refused_secret_names_the_source(sb: Sandbox) -> None:
    block, env = graph_files.source(sb.ctx, sb.ctx.workdir)
    config = MicrosoftFilesConfig(**tomllib.loads(block)["sources"][0])
    conn = MicrosoftFilesConnector(config, {k: "wrong" for k in env})
    with pytest.raises(CredentialsError) as caught:
        conn.check()
    assert caught.value.source == "sandbox-files" and "7000215" in str(caught.value)


def test_config_needs_users_sites_or_drives() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least one of"):
        MicrosoftFilesConfig(name="x", type="microsoft_files", tenant_id="t", client_id="c", client_secret_env="E")


def test_the_index_rewrites_a_permission_change_without_embedding(sb: Sandbox, tmp_path: Any, embedder: Any) -> None:
    from pathlib import Path

    from inlet.config import parse_config
    from inlet.index.search import SearchRequest, search
    from inlet.index.store import Index
    from inlet.sync.engine import Engine
    from inlet.storage.sqlite.state import SqliteState

    text, env = sb.config(tmp_path / "index")
    raw = tomllib.loads(text)
    raw["sources"] = [s | {"sites": []} for s in raw["sources"] if s["name"] == "sandbox-files"]  # the OneDrive
    settings = parse_config(raw)
    with Index(settings.index, embedder=embedder) as index:
        state_db = SqliteState(Path(settings.index.path) / "state.db")
        try:
            engine = Engine(settings, index, state_db, env=env)
            assert engine.run("sandbox-files", "backfill").outcome == "ok"

            def visible(user: str) -> list[str]:
                hits, _ = search(
                    index,
                    SearchRequest(query="quarterly search quality review", k=3, user=user, recency_half_life_days=0),
                )
                return [h.doc_id for h in hits]

            notes = doc_id(sb, "Notes.txt")
            assert notes not in visible("bob@example.com")
            with sb.ws.lock:
                state(sb).share(item(sb, "Notes.txt").id, perm(user="bob@example.com"))
            result = engine.run("sandbox-files", "sync")
            assert (result.outcome, result.upserted, result.embedded) == ("ok", 1, 0)
            assert notes in visible("bob@example.com")
        finally:
            state_db.close()


def test_since_compares_instants_not_strings(sb: Sandbox) -> None:
    """`...:00.5Z` sorts before `...:00Z` as text, yet is half a second later."""
    since = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    with sb.ws.lock:
        item(sb, "Notes.txt").modified = since + dt.timedelta(milliseconds=500)
    items = list(connector(sb).load(None, since=since))
    assert set(docs(items)) == {"Notes.txt"}


def test_delta_asks_for_no_parents_with_the_documented_header(sb: Sandbox) -> None:
    """`deltaExcludeParent` is a request header of its own (driveItem: delta); `Prefer` too is kept."""
    block, env = graph_files.source(sb.ctx, sb.ctx.workdir)
    config = MicrosoftFilesConfig(**tomllib.loads(block)["sources"][0])
    seen: list[httpx.Request] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return super().handle_request(request)

    transport = Recording(verify=ssl_context(config.ca_bundle))
    run(MicrosoftFilesConnector(config, env, transport=transport))
    deltas = [r for r in seen if r.url.path.endswith("/root/delta")]
    assert deltas and all(r.headers.get("deltaExcludeParent") == "true" for r in deltas)
    asked = [{p.strip() for p in r.headers["Prefer"].split(",")} for r in deltas]  # sharing changes need all three
    assert all(
        {"deltashowsharingchanges", "deltashowremovedasdeleted", "deltatraversepermissiongaps"} <= a for a in asked
    )


def until_failure(conn: MicrosoftFilesConnector, checkpoint: dict[str, Any]) -> tuple[list[Any], Exception]:
    """What a run yields before it fails, and its error (a run that ends is a test failure)."""
    items: list[Any] = []
    with pytest.raises(AccessRefusedError) as caught:
        items.extend(conn.load(checkpoint))
    return items, caught.value


@pytest.mark.parametrize("where", [("sites", "drive"), ("delta",)], ids=["discovery", "delta"])
def test_every_target_refused_fails_the_run_naming_them_and_deletes_nothing(
    sb: Sandbox, where: tuple[str, ...]
) -> None:
    """The app's consent withdrawn: Graph refuses every site and drive (when they are listed, or
    when their delta is read). A run that read nothing is a failed run, not `partial`."""
    conn = connector(sb)
    _, cp = run(conn)
    for route in where:
        sb.faults.fail("graph", route, 403, times=1000, reason="Authorization_RequestDenied")
    items, error = until_failure(conn, cp)
    message = str(error)
    assert message.startswith("source 'sandbox-files': no drive it is configured to read could be read")
    assert "Authorization_RequestDenied" in message and "Files.Read.All" in message and "admin consent" in message
    assert not deleted(items) and not docs(items)
    skips = [i for i in items if isinstance(i, Skipped)]
    assert len(skips) > 1 and all(s.failed and "the app needs the application permission" in s.reason for s in skips)
    assert all(s.reason in message for s in skips[:3])  # the first refused targets, by name, and why
    more = len(skips) - 3
    assert (f"and {more} more, each a skip `inlet status sandbox-files` lists" in message) == (more > 0)


def test_a_refused_drive_among_readable_ones_stays_a_named_skip(sb: Sandbox) -> None:
    """One drive's delta refused (Files.Read.All missing for it): a failed skip naming the call and the
    permission; the other drives are read and the run goes on."""
    conn = connector(sb)
    _, cp = run(conn)
    sb.faults.fail("graph", "delta", 403, times=1, reason="accessDenied")
    items, _ = run(conn, cp)
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and skip.id.startswith("sandbox-files:drive:")
    assert "GET /drives/" in skip.reason and "/root/delta: 403 accessDenied" in skip.reason
    assert skip.reason.endswith("the app needs the application permission Files.Read.All, with admin consent")
    assert not deleted(items)
