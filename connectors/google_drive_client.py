"""The Drive v3 calls of the google_drive connector, executed by the kit's `GoogleService`.

Credentials, retries (429, 5xx, rate-limit 403, `Retry-After` honoured), the shared quota bucket,
thread-local `AuthorizedHttp`s and the error mapping are the kit's (`kit.google`); this module only
names the Drive calls and their fields. Listings that are not checkpointed page by page
(permissions, shared drives) go through the kit's pager, which refuses a repeated page token. Every
files.list asks for `incompleteSearch`: a listing over all drives may leave files out, and a
`FileListing` says so; a `CompleteListing` then lists My Drive and each shared drive on its own
(`corpora=user`, `corpora=drive`), which Drive answers whole. `permissions.list` on a shared drive's
id answers the drive's members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .kit import RetryPolicy, page_token, pages
from .kit.google import GoogleApiError, GoogleService

SCOPES = ["https://www.googleapis.com/auth/drive.readonly"]
DriveApiError = GoogleApiError  # a non-retriable answer: 404, 403 fileNotDownloadable, 400 ...


USER = "user"  # `list_files` corpus: My Drive alone


def _corpora(corpus: str | bool) -> tuple[str, str | None]:
    """(corpora, driveId) of a `list_files` corpus."""
    if corpus is True:
        return "allDrives", None
    if corpus is False or corpus == USER:
        return "user", None
    return "drive", str(corpus)


class FileListing:
    """The files of a listing, read page by page as it is iterated; `incomplete` turns true when a
    page says `incompleteSearch` (Drive could not search every drive: files may be missing)."""

    def __init__(self, fetch: Callable[[str | None], dict[str, Any]], source: str) -> None:
        self.fetch, self.source = fetch, source
        self.incomplete = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for page in pages(self.fetch, page_token, source=self.source, what="files.list"):
            self.incomplete = self.incomplete or bool(page.get("incompleteSearch"))
            yield from page.get("files", [])


class CompleteListing:
    """The files `q` matches in My Drive and, with `all_drives`, every shared drive, read as they
    are iterated. Listed over all drives first; when Drive calls that listing incomplete
    (`incompleteSearch`: it could not search every drive), listed again per corpus, as Drive
    advises: My Drive (`corpora=user`) and each shared drive (`corpora=drive`), listings Drive
    answers whole. Only files not met yet are yielded; `incomplete` stays true only when a narrowed
    listing says so too."""

    def __init__(self, client: "DriveClient", q: str, fields: str, all_drives: bool) -> None:
        self.client, self.q, self.fields, self.all_drives = client, q, fields, all_drives
        self.incomplete = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        first = self.client.files(self.q, self.fields, self.all_drives)
        for f in first:
            seen.add(f["id"])
            yield f
        if not first.incomplete:
            return
        for corpus in [USER, *self.client.drives()]:
            listing = self.client.files(self.q, self.fields, corpus)
            for f in listing:
                if f["id"] not in seen:
                    seen.add(f["id"])
                    yield f
            self.incomplete = self.incomplete or listing.incomplete


class DriveClient(GoogleService):
    def __init__(
        self,
        source: str,
        credentials: Any,
        api_endpoint: str | None,
        *,
        policy: RetryPolicy,
        per_second: float = 0.0,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(
            "drive",
            "v3",
            source=source,
            credentials=credentials,
            api_endpoint=api_endpoint,
            policy=policy,
            per_second=per_second,
            timeout=timeout,
        )

    def start_page_token(self, drive_id: str | None = None) -> str:
        """The user's change log's start token, or with `drive_id` that shared drive's log's."""
        return str(
            self.call(
                lambda s: s.changes().getStartPageToken(
                    supportsAllDrives=True, driveId=drive_id, fields="startPageToken"
                )
            )["startPageToken"]
        )

    def list_files(
        self, q: str, page_token: str | None, page_size: int, fields: str, corpus: str | bool
    ) -> dict[str, Any]:
        """A page of files.list over `corpus`: True (My Drive and every shared drive, `allDrives`,
        which Drive may answer in part), False or `USER` (My Drive, `user`), or a shared drive's id
        (that drive alone, `corpora=drive`: complete)."""
        corpora, drive_id = _corpora(corpus)
        return dict(
            self.call(
                lambda s: s.files().list(
                    q=q,
                    pageToken=page_token,
                    pageSize=page_size,
                    fields=f"nextPageToken,incompleteSearch,files({fields})",
                    corpora=corpora,
                    driveId=drive_id,
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=corpora != "user",
                )
            )
        )

    def files(self, q: str, fields: str, corpus: str | bool) -> FileListing:
        """Every file `q` matches in `corpus` (as `list_files`), 1000 a page (for listings not
        checkpointed page by page)."""
        return FileListing(lambda token: self.list_files(q, token, 1000, fields, corpus), self.source)

    def list_changes(
        self, page_token: str, page_size: int, fields: str, all_drives: bool, drive_id: str | None = None
    ) -> dict[str, Any]:
        """A page of the user's change log, or with `drive_id` of that shared drive's own log. A
        removed change carries its file while the user can still read it (moved to another log)."""
        return dict(
            self.call(
                lambda s: s.changes().list(
                    pageToken=page_token,
                    pageSize=page_size,
                    driveId=drive_id,
                    includeRemoved=True,
                    includeCorpusRemovals=True,
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=all_drives or drive_id is not None,
                    fields="nextPageToken,newStartPageToken,"
                    f"changes(changeType,fileId,driveId,removed,time,drive(id,name),file({fields}))",
                )
            )
        )

    def watch_changes(
        self, page_token: str, channel: dict[str, Any], all_drives: bool, drive_id: str | None = None
    ) -> dict[str, Any]:
        """Open a push channel (`changes.watch`) on the user's change log, or with `drive_id` on that
        shared drive's: `channel` has id, type, address, token, expiration."""
        return dict(
            self.call(
                lambda s: s.changes().watch(
                    pageToken=page_token,
                    body=channel,
                    driveId=drive_id,
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=all_drives or drive_id is not None,
                )
            )
        )

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        self.call(lambda s: s.channels().stop(body={"id": channel_id, "resourceId": resource_id}))

    def get_file(self, file_id: str, fields: str) -> dict[str, Any]:
        return dict(self.call(lambda s: s.files().get(fileId=file_id, fields=fields, supportsAllDrives=True)))

    def permissions(self, file_id: str) -> list[dict[str, Any]]:
        """A file's permissions, or with a shared drive's id that drive's members."""
        fields = "nextPageToken,permissions(type,role,emailAddress,domain,deleted,allowFileDiscovery)"
        return self.listed(
            lambda s, token: s.permissions().list(
                fileId=file_id, supportsAllDrives=True, pageToken=token, fields=fields
            ),
            "permissions",
            "permissions.list",
        )

    def drives(self) -> dict[str, str]:
        return {
            d["id"]: d["name"]
            for d in self.listed(
                lambda s, token: s.drives().list(pageSize=100, pageToken=token, fields="nextPageToken,drives(id,name)"),
                "drives",
                "drives.list",
            )
        }

    def user_email(self) -> str:
        """The address of the user the credentials read as (`about.get`): how an authorized user's
        credentials, which do not name their user, are known by."""
        about = self.call(lambda s: s.about().get(fields="user(emailAddress)"))
        return str(about["user"]["emailAddress"])

    def download(self, file_id: str) -> bytes:
        return bytes(self.call(lambda s: s.files().get_media(fileId=file_id, supportsAllDrives=True)))

    def export(self, file_id: str, mime_type: str) -> bytes:
        return bytes(self.call(lambda s: s.files().export(fileId=file_id, mimeType=mime_type)))
