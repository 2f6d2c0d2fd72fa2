"""OneDrive and SharePoint document libraries through Microsoft Graph: one document per file.

The config, the connector and its entry points (`load`, `load_scope`, `live_ids`, `events`); a
sync itself (drives, delta rounds, the checkpoint, permissions) is `microsoft_files_sync.py`,
whose docstring states what the checkpoint guarantees. Application permissions: Files.Read.All
(or Sites.Read.All / Sites.Selected with the sites granted), GroupMember.Read.All,
Organization.Read.All; see docs/connectors/microsoft-files.md.

Each drive a sync reads has a Graph subscription on its root (`events`, with `notifications_url`):
those listed when the daemon starts, then those of each checkpoint a run saves
(`checkpoint_resources`: its drives but those of a site or user the run was refused), so a drive a
run found new is subscribed to, and one it dropped is not, without a restart.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import Field, model_validator

from inlet.errors import RetriableError

from .base import Interval, ServiceUrl
from .events import EventSource
from .kit.graph_source import GraphConnector, GraphSourceConfig
from .kit.graph import GraphClient
from .kit.graph_webhooks import Resource
from .kit.scope import check_scope
from .microsoft_files_sync import SITES_PERMISSION, FilesCheckpoint, FilesRun
from .model import Item, Skipped

log = logging.getLogger(__name__)


class MicrosoftFilesConfig(GraphSourceConfig):
    MAX_SUBSCRIPTION_LIFETIME = (42300, "OneDrive and SharePoint drives (about 29 days)")
    users: list[str] = Field(default_factory=list, description="users whose OneDrive is read")
    sites: list[str] = Field(
        default_factory=list,
        description="sites ('contoso.sharepoint.com:/sites/Eng' or a site id) whose every document library is read",
    )
    drives: list[str] = Field(default_factory=list, description="drive ids read as they are")
    include: list[str] = Field(["**/*"], description="path globs inside each drive, e.g. 'Specs/**'")
    link_shares: bool = Field(
        True,
        description="an anonymous link is public, an organisation link the tenant's domains; "
        "false: such links grant nothing (only who has the link opens the file)",
    )
    max_file_mb: float = Field(50.0, gt=0, description="larger files are skipped, with the reason recorded")
    notifications_url: ServiceUrl | None = Field(
        None,
        description="public HTTPS URL of this source's hook "
        "(.../hooks/microsoft_files/NAME): Graph change notifications (daemon)",
    )
    subscription_lifetime: Interval = Field(
        "2d",
        description="how long each drive subscription lasts before "
        "renewal (Graph allows up to about 29 days for drives)",
    )
    page_size: int = Field(200, ge=1, le=1000, description="items per delta page")

    @model_validator(mode="after")
    def _something(self) -> "MicrosoftFilesConfig":
        if not (self.users or self.sites or self.drives):
            raise ValueError("at least one of 'users', 'sites' or 'drives' is required")
        return self


class MicrosoftFilesConnector(GraphConnector[MicrosoftFilesConfig]):
    """Files of OneDrives and SharePoint libraries (application permission Files.Read.All, or
    Sites.Selected with the sites granted, plus GroupMember.Read.All)."""

    type = "microsoft_files"
    Config = MicrosoftFilesConfig
    user_agent = "inlet-microsoft-files/0.1"
    recent_first = True  # `since` skips reading older items (the listing covers all): Connector.recent_first
    # delta reports changed files only; drives (`users`, `sites`, `drives`) are dropped or read whole by the sync itself
    scope_keys = frozenset({"include", "link_shares"})
    permissions = (  # docs/connectors/microsoft-files.md's table
        (r"^/sites/", SITES_PERMISSION),
        (r"^/(drives/|users/[^/]+/drive)", "Files.Read.All"),
        (r"^/groups/", "GroupMember.Read.All"),
        (r"^/organization", "Organization.Read.All"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # now, as a sync weighs expiring permissions (read once per sync); a test may set its own
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)

    def load(self, checkpoint: dict[str, Any] | None, *, since: dt.datetime | None = None) -> Iterator[Item]:
        st = FilesCheckpoint.load(checkpoint, source=self.name) or FilesCheckpoint(since=_iso(since))
        yield from self.with_client(lambda client: FilesRun(self, client, st).run())
        yield st.checkpoint()

    def load_scope(self, checkpoint: dict[str, Any], scope: frozenset[str]) -> Iterator[Item]:
        """Only the delta rounds of the drives in `scope`; a full run when one is unknown."""
        st = FilesCheckpoint.load(checkpoint, source=self.name)
        if st is None or not scope <= set(st.drives):
            yield from self.load(checkpoint)
            return
        yield from self.with_client(lambda client: FilesRun(self, client, st).run_drives(sorted(scope)))
        yield st.checkpoint()

    def live_ids(self) -> Iterator[str]:
        """Ids of every in-scope file the policy would index: one fresh delta listing per drive."""
        yield from self.with_client(self._listed_ids)

    def _listed_ids(self, client: GraphClient) -> Iterator[str]:
        run = FilesRun(self, client, FilesCheckpoint())
        targets, problems = run.discover()
        if problems:  # an unreadable drive proves nothing gone
            raise RetriableError(f"source {self.name!r}: {problems[0].reason}")
        paths: set[str] = set()
        for drive in targets:
            yield from run.listed_ids(drive["id"], paths)
        self.include_scope(paths)  # no glob matching any file: a prune would delete everything

    def events(self) -> EventSource | None:
        """A Graph subscription on each drive's root (Graph posts `updated` for any change below it)."""
        return self.webhooks(
            self.drive_roots, "updated", what="subscription for drive", watched=self.checkpoint_resources
        )

    def drive_roots(self, client: GraphClient) -> dict[str, str]:
        """{drive id: its root's resource path} of every drive a sync reads."""
        targets, _ = FilesRun(self, client, FilesCheckpoint()).discover()
        return {d["id"]: _root_of(d["id"], d["site"], str(d.get("name") or "")) for d in targets}

    def checkpoint_resources(self, checkpoint: dict[str, Any]) -> dict[str, str]:
        """The same, of the drives a checkpoint says the runs read (no call): a drive a run found new
        gets its subscription, one it dropped loses it."""
        st = FilesCheckpoint.load(checkpoint, source=self.name) or FilesCheckpoint()
        refused = set(st.refused)
        return {drive: _root_of(drive, ds.site, ds.name) for drive, ds in st.drives.items() if ds.target not in refused}

    def include_scope(self, paths: set[str]) -> list[Skipped]:
        """A skip by policy for each `include` glob the config sets that matches none of the drives'
        file `paths` (`kit.scope`; the closest names offered are paths and folders, as `Folder/**`),
        `NothingInScopeError` when none matches. The default (every file) is not checked."""
        globs = self.config.include if "include" in self.config.model_fields_set else []
        matched = {glob for glob in globs if any(self.in_scope(path, [glob]) for path in paths)}
        folders = {path.rsplit("/", 1)[0] + "/**" for path in paths if "/" in path}
        return check_scope(self, "include", globs, matched, paths | folders, "file path")

    def in_scope(self, path: str, globs: list[str] | None = None) -> bool:
        """Whether `path` matches one of `globs` (default: the `include` globs)."""
        return any(
            fnmatch.fnmatchcase(path, p) or (p.startswith("**/") and fnmatch.fnmatchcase(path, p[3:]))
            for p in (self.config.include if globs is None else globs)
        )


def _root_of(drive_id: str, site: str, name: str) -> Resource:
    """The Graph resource of a drive's root (what a subscription watches: any change below it),
    labelled by its site and name (`Engineering/Documents`), else its id."""
    return Resource(f"/drives/{drive_id}/root", "/".join(p for p in (site, name) if p) or drive_id)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
