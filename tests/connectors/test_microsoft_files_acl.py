"""microsoft_files ACLs from permissions in Graph's real shapes: site groups named alone (`siteGroup`),
claims principals in `siteUser.loginName`, expiring and password-protected links (sandbox Graph)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from inlet.connectors.microsoft_files_acl import acl_key, grants_of
from inlet.connectors.model import ACL, Skipped
from inlet.sandbox.graph_files_seed import perm
from inlet.sandbox.graph_files_state import Group
from inlet.sandbox.server import Sandbox
from tests.connectors.test_microsoft_files import ENGINEERING, connector, docs, item, run, state

ALICE = "abilinski@example.com"  # owner of the Engineering group
DOMAINS = ["example.com", "sandbox.onmicrosoft.com"]
PAST = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


def group(sb: Sandbox, name: str) -> Group:
    return next(g for g in state(sb).groups.values() if g.name == name)


def only(sb: Sandbox, name: str, **who: Any) -> None:
    """The file `name` shared with this permission alone (its inheritance broken)."""
    with sb.ws.lock:
        state(sb).share(item(sb, name).id, perm(**who), unique=True)


def test_a_group_connected_sites_owners_and_members_groups_grant_the_groups_owners_and_members(sb: Sandbox) -> None:
    """Graph names a site group alone; the drive's owner.group is the site's Microsoft 365 group."""
    only(sb, "Budget 2024.xlsx", site_group="Engineering Owners")
    conn = connector(sb)
    items, cp = run(conn)
    got = docs(items)
    assert got["Design/Search design.docx"].acl.users == ENGINEERING  # inherited Owners + Members
    assert got["Budget 2024.xlsx"].acl.users == [ALICE]
    finance = group(sb, "Finance")
    assert got["Forecast.xlsx"].acl.users == sorted(finance.members)
    assert not [i for i in items if isinstance(i, Skipped) and "site group" in i.reason]
    with sb.ws.lock:  # owners are read again on every sync
        group(sb, "Engineering").owners.append("doubledeez@example.com")
    got = docs(run(conn, cp)[0])
    assert got["Budget 2024.xlsx"].acl.users == [ALICE, "doubledeez@example.com"]


def test_a_site_group_whose_id_is_a_guid_is_read_as_an_entra_group(sb: Sandbox) -> None:
    platform = group(sb, "Platform Team")
    only(sb, "Budget 2024.xlsx", site_group="Platform readers", site_group_id=platform.id)
    assert docs(run(connector(sb))[0])["Budget 2024.xlsx"].acl.users == ["hamza@example.com"]


def test_an_unresolved_site_group_grants_nobody_and_is_reported_once_by_name(sb: Sandbox) -> None:
    only(sb, "Budget 2024.xlsx", site_group="Engineering Visitors")  # SharePoint's own membership
    only(sb, "API spec.html", site_group="Engineering Visitors")
    with sb.ws.lock:  # a site connected to no group: its Members group cannot be read either
        next(s for s in state(sb).sites.values() if s.name == "Finance").group = None
    items, _ = run(connector(sb))
    got = docs(items)
    assert got["Budget 2024.xlsx"].acl.users == got["API spec.html"].acl.users == []
    assert got["Forecast.xlsx"].acl.users == []
    assert got["Design/Search design.docx"].acl.users == ENGINEERING  # the other site still resolves
    reported = sorted((s.title, s.failed) for s in items if isinstance(s, Skipped) and "site group" in s.reason)
    assert reported == [
        ("Engineering/Engineering Visitors", False),
        ("Finance/Finance Members", False),
        ("Finance/Finance Owners", False),
    ]
    visitors = next(s for s in items if isinstance(s, Skipped) and s.title == "Engineering/Engineering Visitors")
    assert "Share the files with an Entra or Microsoft 365 group" in visitors.reason


def test_claims_principals_grant_their_groups_and_the_organisation(sb: Sandbox) -> None:
    finance, platform = group(sb, "Finance"), group(sb, "Platform Team")
    tenant = "6e1b0b7c-0000-4000-8000-000000000000"
    only(sb, "Budget 2024.xlsx", claim=f"c:0o.c|federateddirectoryclaimprovider|{finance.id}")
    only(sb, "Notes.txt", claim=f"c:0o.c|federateddirectoryclaimprovider|{finance.id}_o")
    only(sb, "API spec.html", claim=f"c:0t.c|tenant|{platform.id}")
    only(sb, "Architecture.pdf", claim=f"c:0-.f|rolemanager|spo-grid-all-users/{tenant}")
    got = docs(run(connector(sb))[0])
    assert got["Budget 2024.xlsx"].acl.users == sorted(finance.members)
    assert got["Notes.txt"].acl.users == finance.owners
    assert got["API spec.html"].acl.users == ["hamza@example.com"]
    everyone = got["Design/Architecture.pdf"].acl
    assert everyone.users == [] and everyone.domains == DOMAINS and not everyone.public


def test_expired_and_password_protected_anonymous_links_are_not_public(sb: Sandbox) -> None:
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
    only(sb, "Search design.docx", link="anonymous", expires=later)
    only(sb, "Forecast.xlsx", link="anonymous", expires=PAST)
    only(sb, "Budget 2024.xlsx", link="anonymous", password=True)
    conn = connector(sb)
    items, cp = run(conn)
    got = docs(items)
    assert got["Design/Search design.docx"].acl.public  # not expired yet
    assert not got["Forecast.xlsx"].acl.public and got["Forecast.xlsx"].acl.users == []
    assert not got["Budget 2024.xlsx"].acl.public
    conn.clock = lambda: later  # the link's time passes: nothing changes in Graph, delta lists nothing
    items, _ = run(conn, cp)
    assert {p: d.acl.public for p, d in docs(items).items()} == {"Design/Search design.docx": False}


def test_an_upload_only_link_lets_nobody_read(sb: Sandbox) -> None:
    """A `createOnly` link (a file request) lets its holders add files, never view them: a file
    under a folder shared so is not public, nor the organisation's."""
    only(sb, "Search design.docx", roles="write", link="anonymous", link_type="createOnly")
    only(sb, "Forecast.xlsx", roles="write", link="organization", link_type="createOnly")
    got = docs(run(connector(sb))[0])
    assert got["Design/Search design.docx"].acl == ACL()
    assert got["Forecast.xlsx"].acl == ACL()


def test_without_link_shares_anonymous_and_organisation_links_grant_nothing(sb: Sandbox) -> None:
    """`link_shares = false`: only who has the link opens such a file, so it reaches nobody's
    search; a specific-people link still grants its people. The default keeps the mapping."""
    only(sb, "Search design.docx", link="anonymous")
    only(sb, "Forecast.xlsx", link="organization")
    strict = docs(run(connector(sb, link_shares=False))[0])
    assert strict["Design/Search design.docx"].acl == ACL()
    assert strict["Forecast.xlsx"].acl == ACL()
    default = docs(run(connector(sb))[0])
    assert default["Design/Search design.docx"].acl.public
    assert sorted(default["Forecast.xlsx"].acl.domains) == DOMAINS


def test_a_checkpoint_of_an_older_inlet_lists_every_drive_again_and_fixes_the_acls(sb: Sandbox) -> None:
    """Version 1 kept no site group a permission named: such files had an empty ACL it will not re-read."""
    conn = connector(sb)
    _, cp = run(conn)
    old = {**cp, "version": 1}
    for ds in old["drives"].values():  # what version 1 kept of a file only site groups may read
        for entry in ds["files"].values():
            if entry["g"] and all(g.startswith("sg:") for g in entry["g"]):
                entry["g"], entry["a"] = [], acl_key(ACL())
    items, cp = run(conn, old)
    assert cp["version"] == 2
    got = docs(items)
    assert got["Design/Search design.docx"].acl.users == ENGINEERING
    assert "Notes.txt" not in got  # the ACL it had is right: not yielded again


def test_a_group_graph_names_beside_a_site_group_is_expanded() -> None:
    """An emulator (or a future Graph) naming the Entra group beside the site group: that group."""
    named = {"siteGroup": {"id": "5", "displayName": "X Members"}, "group": {"id": "g-1", "displayName": "X"}}
    assert grants_of([{"id": "1", "roles": ["write"], "grantedToV2": named}]) == ["g:g-1"]
