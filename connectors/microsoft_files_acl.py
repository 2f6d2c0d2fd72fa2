"""Who may read a SharePoint or OneDrive item, from the permissions Graph reports for it.

Invariant: a document's ACL names exactly the people its permissions reach as Graph reports them,
as far as Graph can tell; whatever inlet cannot resolve grants nobody (access fails closed) and is
said so: logged, and recorded as a skip of the run naming it.

An item's permissions (its own and the inherited ones, `inheritedFrom`) become grant tokens, kept
in the checkpoint; any role reads:

- `u:EMAIL` and `id:USER-ID`: a user (`grantedToV2` / `grantedTo` / a specific-people link's
  `grantedToIdentitiesV2`). Graph documents only `id` and `displayName` on an identity, so the
  address is taken from, in order: `user.email`, `user.userPrincipalName`, `siteUser.email`, the UPN
  at the end of `siteUser.loginName` (`i:0#.f|membership|alice@contoso.com`); failing all of them
  the user is kept by Entra id (`id:`), looked up with `GET /users/{id}`.
- `g:GROUP-ID` (an Entra group's members) and `o:GROUP-ID` (a Microsoft 365 group's owners): a
  `group` identity, or a SharePoint claim in `siteUser.loginName`:
  `c:0o.c|federateddirectoryclaimprovider|ID` (a Microsoft 365 group's members; `ID_o` its owners),
  `c:0t.c|tenant|ID` (a security group).
- `org`: an organization-scope link, and the claims of the whole organisation
  (`c:0-.f|rolemanager|spo-grid-all-users/TENANT`, "Everyone except external users"; `c:0(.s|true`,
  "Everyone", granted as its organisation part only).
- `anon`: an anonymous link, unless it has a password (`hasPassword`: only who knows it reads; the
  link grants nobody in inlet).
- `sg:ID|NAME`: a SharePoint site group Graph names alone (`siteGroup`, as it sends a site's Owners,
  Members and Visitors). Graph has no call listing a site group's members, so it is resolved, in
  order: a `group` Graph names beside it (then the token is `g:`); an `ID` shaped as a GUID, read as
  an Entra group; on a group-connected site (the Microsoft 365 group is the drive's `owner.group`),
  "SITE Owners" -> the group's owners and "SITE Members" -> its members. Anything else is unresolved.
- A permission with an `expirationDateTime` (an expiring link or invitation) grants nothing once it
  is past: its tokens are wrapped as `until:TIME;TOKEN` and weighed against the sync's time at every
  ACL, so a link that expires between syncs is taken off at the next one (`FilesRun`'s ACL drift).

`Principals` turns tokens into an `ACL` for one drive (`Site`: its Microsoft 365 group and name):
users by id to their address, groups expanded to their members' emails with `transitiveMembers`
(nested groups included), owners with `owners`, `org` to the tenant's verified domains, `anon` to
public. Users, members, owners and domains are read fresh once per sync (one `$batch`), so a
membership change reaches every ACL that names the group. A user or group Graph no longer finds
(404) grants nobody; an unresolved site group, an unknown claim and a user identity with neither an
address nor an id grant nobody and are logged; an unresolved site group is also listed in
`unresolved` (once per run), which the sync reports as a skip.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .kit.graph_batch import batch_get
from .kit.graph import GraphClient, GraphError
from .kit.retry import RetryPolicy
from .model import ACL, normal_user

log = logging.getLogger(__name__)

ORG, ANON = "org", "anon"
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ORG_PATH = "/organization?$select=verifiedDomains"


@dataclass(frozen=True)
class Site:
    """What resolves a site group on one drive: the Microsoft 365 group behind its site (the
    drive's `owner.group.id`, "" for none), the names its default groups start with (the site's
    and the group's display names), and how a report names the site."""

    group: str = ""
    names: tuple[str, ...] = ()
    label: str = ""


NO_SITE = Site()


def grants_of(permissions: list[dict[str, Any]], now: dt.datetime | None = None, links: bool = True) -> list[str]:
    """Grant tokens of an item's permissions (sorted, each once); an expired permission grants none,
    nor, without `links` (`link_shares = false`), an anonymous or organisation-wide link: only who
    has the link opens those, and SharePoint shows the file in no one else's search."""
    now = now or dt.datetime.now(dt.timezone.utc)
    out: set[str] = set()
    for perm in permissions:
        until = _instant(perm.get("expirationDateTime"))
        if until is not None and until <= now:
            continue  # an expired link or invitation
        tokens = _link(perm) if links else set()
        # the V2 sets supersede the deprecated ones, which may name the same user less completely
        for identity in [
            perm.get("grantedToV2") or perm.get("grantedTo"),
            *(perm.get("grantedToIdentitiesV2") or perm.get("grantedToIdentities") or []),
        ]:
            tokens |= _identity(identity or {})
        stamp = until.strftime("%Y-%m-%dT%H:%M:%SZ") if until is not None else None
        out |= {f"until:{stamp};{t}" if stamp else t for t in tokens}
    return sorted(out)


UPLOAD_ONLY = "createOnly"  # a sharing link that lets its holders add files, never view any (a file request)


def _link(perm: dict[str, Any]) -> set[str]:
    link = perm.get("link") or {}
    if link.get("type") == UPLOAD_ONLY:
        return set()
    scope = link.get("scope")
    if scope == "anonymous":
        if perm.get("hasPassword"):  # only who knows the password reads: nobody inlet can name
            return set()
        return {ANON}
    return {ORG} if scope == "organization" else set()


def _instant(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _identity(identity: dict[str, Any]) -> set[str]:
    group = identity.get("group") or {}
    site_group = identity.get("siteGroup") or {}
    claim = _claim(identity.get("siteUser") or {})
    user = _user(identity) if claim is None else None
    found = claim or ({user} if user else set())
    if group.get("id"):
        found.add(f"g:{group['id']}")
    elif site_group:
        found.add(
            f"sg:{site_group.get('id') or ''}|{site_group.get('displayName') or site_group.get('loginName') or ''}"
        )
    return found


def _claim(site_user: dict[str, Any]) -> set[str] | None:
    """Tokens of a claims principal a `siteUser` names (module docstring); None: it is a person."""
    login = str(site_user.get("loginName") or "")
    if not login.lower().startswith("c:"):
        return None
    parts = login.split("|")
    provider, value = (parts[1].lower() if len(parts) > 2 else ""), parts[-1]
    if provider == "federateddirectoryclaimprovider" and _GUID.fullmatch(value.removesuffix("_o")):
        return {f"o:{value[:-2]}"} if value.endswith("_o") else {f"g:{value}"}
    if provider == "tenant" and _GUID.fullmatch(value):
        return {f"g:{value}"}
    if provider == "rolemanager" and value.lower().startswith("spo-grid-all-users"):
        return {ORG}
    if login.lower() == "c:0(.s|true":
        return {ORG}
    log.warning(
        "SharePoint claim %r (%s) is not one inlet reads; it grants nobody", login, site_user.get("displayName")
    )
    return set()


def _user(identity: dict[str, Any]) -> str | None:
    """`u:EMAIL` or `id:USER-ID` for the user an identity set names (module docstring), else None."""
    user, site_user = identity.get("user") or {}, identity.get("siteUser") or {}
    login = str(site_user.get("loginName") or "").rpartition("|")[2]
    for address in (user.get("email"), user.get("userPrincipalName"), site_user.get("email"), login):
        if "@" in str(address or ""):
            return f"u:{normal_user(str(address))}"
    if user.get("id"):
        return f"id:{user['id']}"
    if user or site_user:
        log.warning(
            "user %r is named without an address or an id; it grants nobody in inlet",
            user.get("displayName") or site_user.get("displayName"),
        )
    return None


def live(grants: Iterable[str], now: dt.datetime | None = None) -> list[str]:
    """The tokens of `grants` not expired at `now`, unwrapped."""
    now = now or dt.datetime.now(dt.timezone.utc)
    out = []
    for grant in grants:
        if grant.startswith("until:"):
            stamp, _, grant = grant[6:].partition(";")
            until = _instant(stamp)
            if until is not None and until <= now:
                continue
        out.append(grant)
    return out


def _site_group_lists(grant: str, site: Site) -> list[str]:
    """The member lists a `sg:` token may stand for on `site`, in the order they are tried."""
    sg_id, _, name = grant[3:].partition("|")
    out = [f"m:{sg_id}"] if _GUID.fullmatch(sg_id) else []
    if site.group:
        for prefix in {n.strip().lower() for n in site.names if n.strip()}:
            if name.lower() == f"{prefix} owners":
                out.append(f"o:{site.group}")
            elif name.lower() == f"{prefix} members":
                out.append(f"m:{site.group}")
    return out


def _lists(grants: Iterable[str], site: Site) -> set[str]:
    """What `grants` need read on `site`: `m:`/`o:` group ids, `id:` user ids, `org`."""
    out: set[str] = set()
    for grant in grants:
        if grant.startswith(("g:", "o:")):
            out.add(("m:" if grant[0] == "g" else "o:") + grant[2:])
        elif grant.startswith("id:") or grant == ORG:
            out.add(grant)
        elif grant.startswith("sg:"):
            out.update(_site_group_lists(grant, site))
    return out


def _path(key: str) -> str:
    kind, _, ref = key.partition(":")
    if kind == "m":
        return f"/groups/{quote(ref, safe='')}/transitiveMembers?$select=mail,userPrincipalName&$top=999"
    if kind == "o":
        return f"/groups/{quote(ref, safe='')}/owners?$select=mail,userPrincipalName&$top=100"
    if kind == "id":
        return f"/users/{quote(ref, safe='')}?$select=mail,userPrincipalName"
    return _ORG_PATH


class Principals:
    """Users named by id, members and owners of the groups and the tenant's domains, read once per sync."""

    def __init__(self, client: GraphClient, policy: RetryPolicy, now: dt.datetime | None = None) -> None:
        self.client, self.policy = client, policy
        self.now = now or dt.datetime.now(dt.timezone.utc)  # expiring permissions are weighed at this instant
        self.read: dict[str, list[str] | None] = {}  # "m:ID"/"o:ID"/"id:ID" -> addresses; None: gone (404)
        self.domains: list[str] | None = None
        self.unresolved: dict[str, str] = {}  # "SITE/GROUP NAME" -> why it grants nobody (once per run)

    def load(self, grants: Iterable[str], site: Site = NO_SITE) -> None:
        self.load_many([(grants, site)])

    def load_many(self, wanted: Iterable[tuple[Iterable[str], Site]]) -> None:
        """Read what the grants need on their sites and this sync has not read yet (one `$batch` at most)."""
        keys: set[str] = set()
        for grants, site in wanted:
            keys |= _lists(live(grants, self.now), site)
        todo = sorted(k for k in keys if k != ORG and k not in self.read)
        if ORG in keys and self.domains is None:
            todo.append(ORG)
        if not todo:
            return
        answers = batch_get(self.client, self.policy, [_path(k) for k in todo])
        for key in todo:
            answer = answers[_path(key)]
            if key == ORG:
                self.domains = _domains(answer)
            elif key.startswith("id:") and isinstance(answer, GraphError) and answer.status == 403:
                raise GraphError(
                    403,
                    answer.code,
                    f"{answer.message} (reading a user a permission names by id needs User.Read.All)",
                    answer.call,
                )
            else:
                self.read[key] = _emails(
                    answer, f"{'user' if key.startswith('id:') else 'group'} {key.partition(':')[2]}"
                )

    def acl(self, grants: Iterable[str], site: Site = NO_SITE) -> ACL:
        grants = live(grants, self.now)
        self.load(grants, site)
        users = [g[2:] for g in grants if g.startswith("u:")]
        for g in grants:
            if g.startswith(("g:", "o:")):
                users += self.read.get(("m:" if g[0] == "g" else "o:") + g[2:]) or []
            elif g.startswith("id:"):
                users += self.read.get(g) or []
            elif g.startswith("sg:"):
                users += self._site_group(g, site)
        return ACL(public=ANON in grants, users=users, domains=(self.domains or []) if ORG in grants else [])

    def _site_group(self, grant: str, site: Site) -> list[str]:
        for key in _site_group_lists(grant, site):
            found = self.read.get(key)
            if found is not None:
                return found
        name = grant[3:].partition("|")[2]
        where = f"{site.label}/{name}"
        if where not in self.unresolved:
            self.unresolved[where] = _unresolved_reason(name, site)
            log.warning("%s", self.unresolved[where])
        return []


def _unresolved_reason(name: str, site: Site) -> str:
    why = (
        "only a group-connected site's default Owners and Members groups map to its Microsoft 365 group"
        if site.group
        else "the site is not connected to a Microsoft 365 group"
    )
    return (
        f"SharePoint site group {name!r} of {site.label or 'a drive'!r} grants nobody: Microsoft Graph does not "
        f"list a site group's members ({why}). Share the files with an Entra or Microsoft 365 group "
        "instead to have inlet grant its members access"
    )


def acl_key(acl: ACL) -> str:
    """A short fingerprint of an ACL: a changed one means the document's ACL must be re-written."""
    raw = f"{acl.public}|{','.join(acl.users)}|{','.join(acl.domains)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _domains(answer: dict[str, Any] | GraphError) -> list[str]:
    if isinstance(answer, GraphError):
        raise answer
    names = [d["name"] for o in answer.get("value", []) for d in o.get("verifiedDomains", []) if d.get("name")]
    return sorted({normal_user(str(name)) for name in names})


def _emails(answer: dict[str, Any] | GraphError, what: str) -> list[str] | None:
    """The addresses of a group's members or owners, or of one user (`answer` is then the user
    itself); None when Graph no longer finds it (it grants nobody)."""
    if isinstance(answer, GraphError):
        if answer.status == 404:
            log.info("%s no longer exists: it grants nobody", what)
            return None
        raise answer
    out = []
    for member in answer["value"] if "value" in answer else [answer]:
        if "group" in str(member.get("@odata.type", "")):
            continue  # transitiveMembers lists nested groups' users too
        email = normal_user(str(member.get("mail") or member.get("userPrincipalName") or ""))
        if "@" in email:
            out.append(email)
    return sorted(set(out))
