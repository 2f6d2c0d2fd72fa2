"""The one error tree of inlet.

Every error a user can meet is an `InletError` whose message says what to do. The CLI maps the
classes to the exit codes of the contract (2 configuration, 3 credentials, 1 everything else);
the sync engine maps them to what happens to a run (an `ItemError` skips one item, a
`RetriableError` is retried, anything else fails the source).
"""

from __future__ import annotations


class InletError(Exception):
    """Base class: an error with a message a user can act on."""

    exit_code: int = 1


class ConfigError(InletError):
    """The configuration is wrong: names the file, the source and the key."""

    exit_code = 2


class CredentialsError(InletError):
    """A source refused its credentials (revoked token, wrong secret): names the source."""

    exit_code = 3

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"source {source!r} refused its credentials: {detail}")
        self.source = source
        self.detail = detail


class WebhookNotVerifiedError(ConfigError):
    """A service refuses to post change notifications to a source's webhook address until the
    address's domain is verified for the project of the source's credentials: names the source, the
    key and where to verify it. Change events stay off; the schedule still syncs the source."""

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"source {source!r}: {detail}")
        self.source = source


class RetriableError(InletError):
    """A transient failure (rate limit, 5xx) that is worth another try after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ItemError(InletError):
    """One item could not be read (corrupt PDF, vanished file): skip it, count it, go on."""

    failed: bool = True  # what its `Skipped` says: False for a skip by policy, which leaves the run ok


class NotTextError(ItemError):
    """An item read as text (by its name or type) holds binary bytes: skipped by policy."""

    failed = False


class UnpacksTooLargeError(ItemError):
    """A file whose contents unpack to more than inlet reads of one (the zip parts of a DOCX, PPTX
    or XLSX file, checked before anything is inflated; a PDF's page contents, before any is
    parsed): skipped by policy."""

    failed = False


class EncryptedError(ItemError):
    """A file locked with a password inlet does not have (an encrypted PDF): it stays unreadable
    until it is saved without one, so it is skipped by policy, not an error of every run."""

    failed = False


class NotADocumentError(ItemError):
    """A file that holds no document though its name says it does (an Office owner file,
    `~$report.docx`, written while someone has the document open): skipped by policy."""

    failed = False


class NothingInScopeError(ConfigError):
    """Every entry of a config key that chooses what a source reads (`channels`, `folders`, `teams`,
    `include`) matched nothing at the service: the run would read nothing, and a full pass would
    delete all the source holds, so it stops first; names the source, the key, each entry and the
    closest existing names. The engine forgets a full pass's checkpoint after it, so the corrected
    key's pass starts over."""


class AccessRefusedError(InletError):
    """The service refused a source every target it is configured to read (each drive, mailbox or
    channel), or a call its whole run needs (`GET /teams`): the app's consent or a permission was
    withdrawn. The run read nothing, so it fails rather than ending `partial`, and deletes nothing;
    names the source, what was refused and why, and the permission to grant
    (`connectors.kit.refusals`)."""


class ConnectorBugError(InletError):
    """A connector broke the contract in a way that leaves nothing safe to apply: it yielded
    something that is not an inlet item (a generator for `yield from`, a method not called, a dict
    for a `Checkpoint`), a checkpoint that is not JSON, or its `live_ids()` listed ids not of its
    source. The run (or prune) fails before any deletion it would have made; names the source and
    what was yielded or listed."""


class IncompleteListingError(InletError):
    """A source could not list all it holds (a folder it may not read): nothing it holds may be
    taken for deleted until it can; names what could not be listed and why."""


class IndexLockedError(InletError):
    """Another process holds the index; embedded Chroma is not safe across processes. `holder`
    names it ("pid 4242 (inlet backfill ...)")."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


class SourceBusyError(InletError):
    """The source is already being synced (by this or another process)."""


class LeaseLostError(InletError):
    """A daemon's lease on a source expired or was taken over: its commit was refused (fencing)."""


class UnknownFilterError(InletError):
    """A search names a source or a source type that this deployment does not have (or, for a
    user, that holds nothing they may see): names the unknown values and the valid ones."""


class DatabaseError(InletError):
    """The index database (PostgreSQL) cannot be reached or refused a statement: names the server."""


class IndexUnavailable(InletError):
    """A server the index lives on (the Chroma server, the PostgreSQL database) cannot be reached:
    names it and its key; nothing indexed is lost, and the next run resumes once it is back."""


class VectorsLost(IndexUnavailable):
    """The Chroma server answers but lacks the index's collection, or holds far fewer vectors than
    the catalog has chunks (its data was lost or replaced): names `chroma_url`, the counts and
    `inlet reindex`, which embeds the catalog's chunks again."""


class StorageError(InletError):
    """The index folder cannot be written (full, read-only, over quota, past the file size limit):
    names the folder; what was committed before is intact and the next run resumes."""


class EmbeddingMismatchError(ConfigError):
    """The index's vectors came from another model or backend than the configured one."""


class BackupError(ConfigError):
    """A backup cannot be restored (a file missing or damaged, a format this inlet does not know):
    names the backup and the file; nothing was restored and the index at the target is untouched."""


class PortInUseError(InletError):
    """A server cannot listen on its configured address (another process has the port)."""

    exit_code = 4
