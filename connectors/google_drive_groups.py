"""Who a Google Group's address stands for: its members, read from the Admin SDK Directory API.

Invariant: a Drive file shared with a group (a `type: "group"` permission, on the file or on its
shared drive) is readable in inlet by the group's own address and by every address the directory
lists as a member of it, directly or through nested groups, as the directory answers in the
current sync; never wider. A group whose members cannot be read (the Directory scope not granted to
the credentials, the reading identity no admin, a group of another organisation: 401/403/404)
grants its own address only, and that is said: logged, and reported as a skip by policy of the run
naming the group and the reason, once per group per run (`Groups.unreadable`).

The members are read with `members.list` on `groups/{groupKey}/members` (200 a page, through the
kit's pager), with credentials of their own carrying only `DIRECTORY_SCOPE`: domain-wide delegation
grants scopes one by one, and a token asked for a scope the Admin console did not grant is refused
whole, which must not stop Drive's own calls. A member of `type: "GROUP"` is read in turn (each group
once per sync, cycles included); a suspended member (`status: "SUSPENDED"`) grants nothing; a
`CUSTOMER` member (the whole organisation) names no address and grants nothing beyond it (logged).
Each group is read at most once per sync, whoever asks first (the reads are serialised: files are
read on several threads), so every ACL of a sync sees one membership per group.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from inlet.errors import CredentialsError

from .kit.google import GoogleApiError, GoogleService
from .model import normal_user

log = logging.getLogger(__name__)

DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.member.readonly"
_PAGE = 200  # members.list's largest page


class DirectoryClient(GoogleService):
    """The Admin SDK Directory API calls the google_drive connector makes (`members.list`); the
    keywords are `GoogleService`'s (policy, per_second, timeout)."""

    def __init__(self, source: str, credentials: Any, api_endpoint: str | None, **options: Any) -> None:
        named = {"source": source, "credentials": credentials, "api_endpoint": api_endpoint}
        super().__init__("admin", "directory_v1", label="Directory", **named, **options)

    def members(self, group: str) -> list[dict[str, Any]]:
        """The direct members of `group` (email, type, status), every page."""
        return self.listed(
            lambda s, token: s.members().list(
                groupKey=group, maxResults=_PAGE, pageToken=token, fields="nextPageToken,members(email,type,status)"
            ),
            "members",
            f"members.list of group {group}",
        )


class Groups:
    """The members of the groups one sync meets, each group read once (`expand`), and the groups
    whose members could not be read (`unreadable`: address -> why). `client` builds the directory
    client when a group is first met; `enabled` False expands nothing (and reads nothing)."""

    def __init__(self, source: str, client: Callable[[], DirectoryClient], enabled: bool = True) -> None:
        self.source, self._client, self.enabled = source, client, enabled
        self._lock = threading.Lock()
        self._direct: dict[str, list[dict[str, Any]] | None] = {}  # group -> its members; None: unreadable
        self.unreadable: dict[str, str] = {}

    def expand(self, group: str) -> list[str]:
        """The addresses of every person `group` holds, nested groups' included (sorted, each
        once; the group's own address is not among them)."""
        if not self.enabled:
            return []
        group = normal_user(group)
        people: set[str] = set()
        seen, todo = {group}, [group]
        with self._lock:
            while todo:
                for member in self._members(todo.pop()) or []:
                    email = normal_user(str(member.get("email") or ""))
                    kind = str(member.get("type") or "USER").upper()
                    if kind == "GROUP":
                        if email and email not in seen:
                            seen.add(email)
                            todo.append(email)
                    elif kind == "CUSTOMER":
                        log.info(
                            "source %r: group %s counts the whole organisation among its members; "
                            "inlet grants that through the group's own address only",
                            self.source,
                            group,
                        )
                    elif "@" in email and str(member.get("status") or "").upper() != "SUSPENDED":
                        people.add(email)
        return sorted(people - seen)

    def key(self, group: str) -> str:
        """A short fingerprint of who `group` grants (its expansion): a changed one means the ACLs
        naming the group must be re-written."""
        return hashlib.sha256(",".join(self.expand(group)).encode()).hexdigest()[:16]

    def _members(self, group: str) -> list[dict[str, Any]] | None:
        if group not in self._direct:
            try:
                self._direct[group] = self._client().members(group)
            except (GoogleApiError, CredentialsError) as err:
                status = err.status if isinstance(err, GoogleApiError) else 401
                if isinstance(err, GoogleApiError) and status not in (400, 401, 403, 404):
                    raise
                self._direct[group] = None
                self.unreadable[group] = _unreadable_reason(group, err)
                log.warning("source %r: %s", self.source, self.unreadable[group])
        return self._direct[group]


def _unreadable_reason(group: str, err: Exception) -> str:
    if isinstance(err, CredentialsError):
        why = (
            f"the credentials may not read the directory ({err}); grant the scope {DIRECTORY_SCOPE} "
            "to the service account's domain-wide delegation in the Admin console"
        )
    elif err.status == 404:  # type: ignore[attr-defined]
        why = f"the directory does not know it ({err}): a group of another organisation, or deleted"
    else:
        why = (
            f"the directory refused to list its members ({err}): the scope {DIRECTORY_SCOPE} must be granted and "
            "the impersonated user (subject) must be an admin who may read groups; a group of another "
            "organisation cannot be read"
        )
    return (
        f"Google Group {group}: its members cannot be read, so files shared with it are found only by the "
        f"group's own address: {why}"
    )


def named_groups(permissions: Iterable[dict[str, Any]]) -> list[str]:
    """The addresses of the groups `permissions` share with (a deleted group's grants nothing)."""
    return sorted(
        {
            normal_user(str(p.get("emailAddress")))
            for p in permissions
            if p.get("type") == "group" and p.get("emailAddress") and not p.get("deleted")
        }
    )
