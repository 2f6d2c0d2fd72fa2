"""Who may read a SharePoint or OneDrive item, from the permissions Graph reports for it.

An item's permissions (its own and the inherited ones, `inheritedFrom`) become grant tokens, kept
in the checkpoint: `u:EMAIL` and `id:USER-ID` (a user, `grantedToV2` / `grantedTo` / a
specific-people link's `grantedToIdentitiesV2`), `g:GROUP-ID` (an Entra group, or the Entra group
behind a SharePoint site group), `org` (an organization-scope link) and `anon` (an anonymous link).
Any role reads. Graph documents only `id` and `displayName` on an identity, so a user's address is
taken from, in order: `user.email`, `user.userPrincipalName`, `siteUser.email`, the UPN at the end
of `siteUser.loginName` (`i:0#.f|membership|alice@contoso.com`); failing all of them the user is kept
by Entra id (`id:`), looked up with `GET /users/{id}`.
`Principals` turns tokens into an `ACL`: users by id to their address, groups expanded to their
members' emails with `transitiveMembers` (nested groups included), `org` to the tenant's verified
domains, `anon` to public. Users, group members and domains are read fresh once per sync (one
`$batch`), so a membership change reaches every ACL that names the group. Access fails closed: a
user or group Graph no longer finds (404), a user identity with neither an address nor an id, and a
SharePoint site group Graph names without its Entra group grant nobody (the last two logged).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

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
        # the V2 sets supersede the deprecated ones, which may name the same user less completely
        for identity in [
            perm.get("grantedToV2") or perm.get("grantedTo"),
            *(perm.get("grantedToIdentitiesV2") or perm.get("grantedToIdentities") or []),
        ]:
            out.update(_identity(identity or {}))
    return sorted(out)


def _identity(identity: dict[str, Any]) -> set[str]:
    group = identity.get("group") or {}
    user = _user(identity)
    found = {user} if user else set()
    if group.get("id"):
        found.add(f"g:{group['id']}")
    elif identity.get("siteGroup"):
        log.warning(
            "SharePoint site group %r is not backed by an Entra group Graph names; it grants nobody in inlet",
            (identity["siteGroup"] or {}).get("displayName"),
        )
    return found


def _user(identity: dict[str, Any]) -> str | None:
    """`u:EMAIL` or `id:USER-ID` for the user an identity set names (module docstring), else None."""
    user, site_user = identity.get("user") or {}, identity.get("siteUser") or {}
    login = str(site_user.get("loginName") or "").rpartition("|")[2]
    for address in (user.get("email"), user.get("userPrincipalName"), site_user.get("email"), login):
        if "@" in str(address or ""):
            return f"u:{str(address).lower()}"
    if user.get("id"):
        return f"id:{user['id']}"
    if user or site_user:
        log.warning(
            "user %r is named without an address or an id; it grants nobody in inlet",
            user.get("displayName") or site_user.get("displayName"),
        )
    return None


def _user_path(user_id: str) -> str:
    return f"/users/{quote(user_id, safe='')}?$select=mail,userPrincipalName"


class Principals:
    """Users named by id, members of the groups and the tenant's domains, read once per sync."""

    def __init__(self, client: GraphClient, policy: RetryPolicy) -> None:
        self.client, self.policy = client, policy
        self.users: dict[str, list[str]] = {}  # Entra user id -> [its address], [] when gone
        self.members: dict[str, list[str]] = {}
        self.domains: list[str] | None = None

    def load(self, grants: Iterable[str]) -> None:
        """Read what `grants` need and this sync has not read yet (one `$batch` call at most)."""
        grants = set(grants)
        groups = sorted(g[2:] for g in grants if g.startswith("g:") and g[2:] not in self.members)
        paths = [f"/groups/{gid}/transitiveMembers?$select=mail,userPrincipalName&$top=999" for gid in groups]
        users = sorted(g[3:] for g in grants if g.startswith("id:") and g[3:] not in self.users)
        paths += [_user_path(uid) for uid in users]
        if ORG in grants and self.domains is None:
            paths.append("/organization?$select=verifiedDomains")
        if not paths:
            return
        answers = batch_get(self.client, self.policy, paths)
        for gid, path in zip(groups, paths):
            self.members[gid] = _emails(answers[path], f"group {gid}")
        for uid in users:
            answer = answers[_user_path(uid)]
            if isinstance(answer, GraphError) and answer.status == 403:
                raise GraphError(
                    403,
                    answer.code,
                    f"{str(answer).partition(': ')[2]} (reading a user a permission names by id needs User.Read.All)",
                )
            self.users[uid] = _emails(answer, f"user {uid}")
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
            elif g.startswith("id:"):
                users += self.users.get(g[3:], [])
        return ACL(public=ANON in grants, users=users, domains=(self.domains or []) if ORG in grants else [])


def acl_key(acl: ACL) -> str:
    """A short fingerprint of an ACL: a changed one means the document's ACL must be re-written."""
    raw = f"{acl.public}|{','.join(acl.users)}|{','.join(acl.domains)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _emails(answer: dict[str, Any] | GraphError, what: str) -> list[str]:
    """The addresses of a group's members, or of one user (`answer` is then the user itself)."""
    if isinstance(answer, GraphError):
        if answer.status == 404:  # the group or user is gone: it grants nobody
            log.info("%s no longer exists: it grants nobody", what)
            return []
        raise answer
    out = []
    for member in answer["value"] if "value" in answer else [answer]:
        if "group" in str(member.get("@odata.type", "")):
            continue  # transitiveMembers lists nested groups' users too
        email = str(member.get("mail") or member.get("userPrincipalName") or "").lower()
        if "@" in email:
            out.append(email)
    return sorted(set(out))
