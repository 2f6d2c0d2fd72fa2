"""Who may read a SharePoint or OneDrive item, from the permissions Graph reports for it.

An item's permissions (its own and the inherited ones, `inheritedFrom`) become grant tokens, kept
in the checkpoint: `u:EMAIL` (a user, `grantedToV2` / `grantedTo` / a specific-people link's
`grantedToIdentitiesV2`), `g:GROUP-ID` (an Entra group, or the Entra group behind a SharePoint site
group), `org` (an organization-scope link) and `anon` (an anonymous link). Any role reads.
`Principals` turns tokens into an `ACL`: groups expanded to their members' emails with
`transitiveMembers` (nested groups included), `org` to the tenant's verified domains, `anon` to
public. Group members and domains are read fresh once per sync (one `$batch`), so a membership
change reaches every ACL that names the group. A SharePoint site group Graph names without its Entra
group grants nobody (logged): access fails closed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from .kit.graph_batch import batch_get
from .kit.graph import GraphClient, GraphError
from .kit.retry import RetryPolicy
from .model import ACL

log = logging.getLogger(__name__)

ORG, ANON = "org", "anon"


def grants_of(permissions: list[dict[str, Any]]) -> list[str]:
    """Grant tokens of an item's permissions (sorted, each once)."""
    out: set[str] = set()
    for perm in permissions:
        link = perm.get("link") or {}
        scope = link.get("scope")
        if scope == "anonymous":
            out.add(ANON)
        elif scope == "organization":
            out.add(ORG)
        for identity in [
            perm.get("grantedToV2"),
            perm.get("grantedTo"),
            *(perm.get("grantedToIdentitiesV2") or []),
            *(perm.get("grantedToIdentities") or []),
        ]:
            out.update(_identity(identity or {}))
    return sorted(out)


def _identity(identity: dict[str, Any]) -> set[str]:
    user = identity.get("user") or {}
    email = str(user.get("email") or user.get("userPrincipalName") or "").lower()
    group = identity.get("group") or {}
    found = {f"u:{email}"} if "@" in email else set()
    if group.get("id"):
        found.add(f"g:{group['id']}")
    elif identity.get("siteGroup"):
        log.warning(
            "SharePoint site group %r is not backed by an Entra group Graph names; it grants nobody in inlet",
            (identity["siteGroup"] or {}).get("displayName"),
        )
    return found


class Principals:
    """Members of the groups and the tenant's domains, read once per sync."""

    def __init__(self, client: GraphClient, policy: RetryPolicy) -> None:
        self.client, self.policy = client, policy
        self.members: dict[str, list[str]] = {}
        self.domains: list[str] | None = None

    def load(self, grants: Iterable[str]) -> None:
        """Read what `grants` need and this sync has not read yet (one `$batch` call at most)."""
        grants = set(grants)
        groups = sorted(g[2:] for g in grants if g.startswith("g:") and g[2:] not in self.members)
        paths = [f"/groups/{gid}/transitiveMembers?$select=mail,userPrincipalName&$top=999" for gid in groups]
        if ORG in grants and self.domains is None:
            paths.append("/organization?$select=verifiedDomains")
        if not paths:
            return
        answers = batch_get(self.client, self.policy, paths)
        for gid, path in zip(groups, paths):
            self.members[gid] = _emails(answers[path], gid)
        if "/organization?$select=verifiedDomains" in answers:
            org = answers["/organization?$select=verifiedDomains"]
            if isinstance(org, GraphError):
                raise org
            self.domains = sorted(
                {
                    str(d["name"]).lower()
                    for o in org.get("value", [])
                    for d in o.get("verifiedDomains", [])
                    if d.get("name")
                }
            )

    def acl(self, grants: Iterable[str]) -> ACL:
        grants = list(grants)
        self.load(grants)
        users = [g[2:] for g in grants if g.startswith("u:")]
        for g in grants:
            if g.startswith("g:"):
                users += self.members.get(g[2:], [])
        return ACL(public=ANON in grants, users=users, domains=(self.domains or []) if ORG in grants else [])


def acl_key(acl: ACL) -> str:
    """A short fingerprint of an ACL: a changed one means the document's ACL must be re-written."""
    raw = f"{acl.public}|{','.join(acl.users)}|{','.join(acl.domains)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _emails(answer: dict[str, Any] | GraphError, group_id: str) -> list[str]:
    if isinstance(answer, GraphError):
        if answer.status == 404:  # the group is gone: it grants nobody
            log.info("group %s no longer exists: it grants nobody", group_id)
            return []
        raise answer
    out = []
    for member in answer.get("value", []):
        if "group" in str(member.get("@odata.type", "")):
            continue  # transitiveMembers lists nested groups' users too
        email = str(member.get("mail") or member.get("userPrincipalName") or "").lower()
        if "@" in email:
            out.append(email)
    return sorted(set(out))
