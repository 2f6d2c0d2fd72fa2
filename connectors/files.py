"""The `files` connector: a folder of .md, .txt, .html, .pdf and Office (.docx, .pptx, .xlsx) files.

The reference connector, small enough to copy. Its checkpoint maps each file to (mtime, size,
content hash), so a re-sync reads only files whose mtime or size moved, re-yields only those whose
bytes changed, and yields a deletion for each file that vanished, or that a policy now skips (no
text left, binary bytes, over the size cap). The checkpoint also holds the ACL the documents
carry: when the config changes it, every file is yielded again (the index re-writes the ACL and
embeds nothing again). Nothing outside the root is read: paths are resolved, symlinks that leave
the root are refused (checked again on the file opened for reading: a link retargeted after the
walk reads nothing, nor does a name swapped for a pipe or a device, which the open never waits
on), and a link to a folder is not followed (logged). A file is one document
however many links inside the root point at it, symbolic or hard (one device and inode): under
its own path when the walk lists it (the first of its hard links), else under the first link the
walk meets (the others are logged); a link to a file `exclude` leaves
out is not followed. What cannot be read is never taken for deleted: a file it may not read, or
every file it knew in a folder it may not list, keeps its document and its checkpoint entry, and is
listed as a failed skip; so is a file whose text cannot be extracted (a damaged .docx), which every
run reads again until it reads (a checkpoint from before such entries were marked, without
`FAILED_MARKED`, gets each of its PDF, DOCX, PPTX and XLSX files extracted once more, so a damaged
file an earlier release took for read is found again); a root that holds no file at all where files were (an unmounted
share's mount point), or none left to index (`include`, `exclude` and the types read leave every
one out), is one failed skip, and deletes nothing. Nothing is left out unsaid: an `include` glob
the config sets that matches no file of the folder is a skip by policy naming it (`kit.scope`), and
when none matches, the run and the prune fail (`NothingInScopeError`) before they read or delete
anything; a file `include` selects whose type is not read (`.rst`, `.png`) is a skip by policy,
yielded after every file is read (thousands in a code repository must not crowd errors out of the
skips a run records). The one rule left unlisted: hidden files and folders (a name starting with
`.`: `.git`, `.env`) are not met at all, but for what an `include` glob naming a dot path
(`.github/**`) matches. A file name that is not UTF-8 is named with its bytes escaped
(`caf\\xe9.md`) and a backslash doubled in its id (`x\\\\y.md`), not in its title or path. A file
caught in the middle of a save is not taken for what the read saw: one that
changes while it is read, or reads empty where it had text (truncated, not yet written again), is
read again after a pause (`FolderConnector.read_settled`); one that still reads empty and keeps
changing keeps its document this run (a skip saying so).
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field

from inlet.errors import ConfigError, IncompleteListingError, ItemError

from .base import ConfigPath, FolderConfig, FolderConnector, open_regular
from .extract import PACKAGE_SUFFIXES, document_title, extract_text, kind_of
from .kit.scope import check_scope, warn
from .model import Checkpoint, Deletion, Item, Progress, Skipped

log = logging.getLogger(__name__)

# "": plain text (e.g. mail dumps)
_MAIN_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx"}
_OFFICE_FORMS = {suffix for suffixes in PACKAGE_SUFFIXES.values() for suffix in suffixes} - _MAIN_SUFFIXES
SUFFIXES = _MAIN_SUFFIXES | _OFFICE_FORMS | {""}
_READ_TYPES = (
    f"{', '.join(sorted(_MAIN_SUFFIXES))}, their macro-enabled and template forms ({', '.join(sorted(_OFFICE_FORMS))}) "
    "and files without a suffix"
)
OVER_CAP = "over the size cap"  # a checkpoint entry's hash when the file was too large to read (checked every run)
UNEXTRACTED = "text not extracted"  # the hash of a damaged file whose entry held its own bytes' hash
FAILED_MARKED = "failed_marked"  # in a checkpoint whose files that failed to extract match no stat (see `_file`)
EXTRACTED_KINDS = ("pdf", "docx", "pptx", "xlsx")  # the kinds whose extraction can fail (damaged)
_GONE = (FileNotFoundError, NotADirectoryError)  # what reading a path that was deleted meanwhile raises
_MID_SAVE = "changed while read and read empty (being saved?): its document is kept as it was; read again next run"


class FilesConfig(FolderConfig):
    path: ConfigPath = Field(description="the folder to index")
    include: list[str] = Field(
        default_factory=lambda: ["**/*"],
        description="globs of files to index (hidden files and folders only when a glob names them: '.github/**')",
    )
    exclude: list[str] = Field(default_factory=list, description="globs of files to leave out")
    max_file_bytes: int = Field(20_000_000, ge=1, description="larger files are skipped")
    checkpoint_every: int = Field(20, ge=1, description="files read between checkpoints")


@dataclass
class _Listing:
    """What a walk of the root found: the indexable files, the folders it could not list, and
    what `include` is checked against."""

    files: list[tuple[str, Path]] = field(default_factory=list)  # (relative path, path), in a stable order
    unlisted: dict[str, str] = field(default_factory=dict)  # relative folder -> why it could not be listed
    met: list[str] = field(
        default_factory=list
    )  # every file met (a hidden one: when a glob names it), before include and exclude
    folders: list[str] = field(default_factory=list)  # every folder met, entered or not (names to suggest)
    matched: set[str] = field(default_factory=set)  # the include globs matching a file met
    unread: list[tuple[str, str]] = field(default_factory=list)  # (relative path, suffix): selected, type not read

    def hides(self, rel: str) -> bool:
        """True when `rel` lies in a folder that could not be listed: it may well still be there."""
        return any(rel.startswith(folder + "/") for folder in self.unlisted)


class FilesConnector(FolderConnector[FilesConfig]):
    type = "files"
    Config = FilesConfig
    deletions_from_checkpoint = True
    recent_first = True  # `since` filters by time at the service (base.Connector.recent_first)

    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        self.check()
        known: dict[str, list[Any]] = dict((checkpoint or {}).get("files", {}))
        acl = json.dumps(self.config.acl().model_dump(), sort_keys=True)
        relabel = (checkpoint or {}).get("acl", acl) != acl  # every file again, with the new ACL
        # written before a failed extraction left its entry matching no stat: a damaged file's entry
        # then matched it, so each file of a kind that can fail is extracted once more (this pass)
        recheck = bool(known) and not (checkpoint or {}).get(FAILED_MARKED)
        marked = {} if recheck else {FAILED_MARKED: True}
        listing = self._listing()  # counted first: the bar gets a total and a time left
        unmatched = warn(self, self._include_scope(listing))  # none matching: NothingInScopeError, nothing read
        if known and not listing.files and not listing.unlisted:
            reason = f"{_nothing_indexed(listing, len(known))}: nothing is deleted"
            if not listing.met:
                reason += " (an unmounted share?)"
            yield Skipped(
                id=self.doc_id(""),
                title=f"{self.config.path}",
                reason=f"{reason}; if that is on purpose, `inlet backfill {self.name}` removes its documents",
                folder=True,
            )
            yield from unmatched
            yield from self._unread(listing)
            yield Checkpoint(state={"files": known, "acl": acl, **marked})
            return
        yield Progress(total=len(listing.files), unit="files")
        yield from unmatched
        for folder, why in listing.unlisted.items():
            reason = f"folder cannot be listed ({why}); its files are kept as they were"
            yield Skipped(id=self.doc_id(folder + "/"), reason=reason, title=folder + "/", folder=True)
        present = {rel for rel in known if listing.hides(rel)}
        unread = bool(listing.unlisted)  # what was not read keeps its old ACL: a relabel is not done yet
        for n, (rel, path) in enumerate(listing.files, 1):
            yield Progress(done=n - 1)
            try:
                again = recheck and kind_of(rel) in EXTRACTED_KINDS
                yield from self._file(rel, path, known, since, relabel or again)
            except _GONE:
                continue  # deleted since the walk: a deletion, not an error
            except OSError as exc:  # its entry stays: what was indexed is kept until it can be read
                unread = True
                yield Skipped(id=self.doc_id(rel), reason=f"cannot be read ({_reason(exc)})", title=_shown(rel))
            present.add(rel)
            if n % self.config.checkpoint_every == 0:
                yield Checkpoint(state={"files": dict(known), **({} if relabel else {"acl": acl}), **marked})
        yield Progress(done=len(listing.files))
        for rel in sorted(set(known) - present):
            del known[rel]
            yield Deletion(id=self.doc_id(rel))
        yield from self._unread(listing)
        done = acl if not (relabel and unread) else (checkpoint or {}).get("acl", acl)
        yield Checkpoint(state={"files": dict(known), "acl": done, FAILED_MARKED: True})

    def live_ids(self) -> Iterator[str]:
        """Every file's id; `IncompleteListingError` when a folder cannot be listed (its files
        are not known to be gone)."""
        self.check()  # a vanished folder is an error, not "every file was deleted"
        listing = self._listing()
        self._include_scope(listing)  # no glob matching a file: NothingInScopeError, nothing deleted
        if not listing.files and not listing.unlisted:
            unmounted = "" if listing.met else " (an unmounted share?)"
            raise IncompleteListingError(
                f"source {self.name!r}: in {self.config.path}, {_nothing_indexed(listing)}{unmounted}; nothing is "
                f"taken for deleted (if that is on purpose, `inlet backfill {self.name}` removes its documents)"
            )
        if listing.unlisted:
            folders = "; ".join(f"{folder}/ ({why})" for folder, why in listing.unlisted.items())
            raise IncompleteListingError(
                f"source {self.name!r}: cannot list {folders} under {self.config.path}; nothing is taken "
                "for deleted until the process may read it"
            )
        return (self.doc_id(rel) for rel, _ in listing.files)

    def _include_scope(self, listing: _Listing) -> list[Skipped]:
        """A skip by policy for each `include` glob the config sets that matches no file the walk
        met (`kit.scope`: the closest paths, folders as `folder/**` and types as `**/*.md` are
        offered; hidden ones only when a glob names a hidden part itself: they are left out by
        default, and `.git/` is no advice for "guid/**"), `NothingInScopeError` when none matches.
        Unchecked: the default (every file), and a folder that holds no file at all (nothing to tell
        a typo by: the emptied-folder skip says so)."""
        globs = self.config.include if "include" in self.config.model_fields_set else []
        if not listing.met or set(globs) <= listing.matched:
            return []
        types = {f"**/*{Path(rel).suffix}" for rel in listing.met if Path(rel).suffix}
        names = {*listing.met, *(f"{folder}/**" for folder in listing.folders), *types}
        if not any(_dot_parts(glob) for glob in globs):
            names = {name for name in names if not _dot_parts(name)}
        return check_scope(self, "include", globs, listing.matched, names, "file path in the folder")

    def _unread(self, listing: _Listing) -> Iterator[Skipped]:
        """A skip by policy for each file `include` selects whose type is not read (nothing of it
        was ever indexed: no deletion, no checkpoint entry)."""
        reasons: dict[str, str] = {}
        for rel, suffix in listing.unread:
            if suffix not in reasons:
                reasons[suffix] = f"its type ({suffix}) is not read: only {_READ_TYPES} are"
            yield Skipped(id=self.doc_id(rel), reason=reasons[suffix], failed=False, title=_shown(rel))

    def _file(
        self, rel: str, path: Path, known: dict[str, list[Any]], since: datetime | None, relabel: bool = False
    ) -> Iterator[Item]:
        """Its document (or skip) when it changed since `known[rel]` (or `relabel`), which is then
        brought up to date, but for a file whose text cannot be extracted: its entry then matches no
        stat (its hash kept), so every run reads it again, and reports it, until it reads. An
        `OSError` from reading it escapes with `known` untouched."""
        stat = path.stat()
        entry = known.get(rel)
        if since and stat.st_mtime < since.timestamp():
            if entry is None:  # left out by `backfill --since`: later syncs read it only once it changes
                known[rel] = [stat.st_mtime_ns, stat.st_size, None]
            return
        if entry and entry[0] == stat.st_mtime_ns and entry[1] == stat.st_size and entry[2] != OVER_CAP:
            if not relabel or entry[2] is None:  # unchanged (and, on an ACL change, never indexed)
                return
        if stat.st_size > self.config.max_file_bytes:
            yield from self._skipped(rel, f"larger than {self.config.max_file_bytes} bytes", entry)
            known[rel] = [stat.st_mtime_ns, stat.st_size, OVER_CAP]
            return
        had_text = entry is not None and entry[2] not in (None, OVER_CAP)
        data, read = self.read_settled(path, stat, had_text, partial(self._read, rel, path))
        if data is None:
            return
        if read is None:
            yield Skipped(id=self.doc_id(rel), reason=_MID_SAVE, failed=False, title=_shown(rel))
            return  # its entry stays as it was: the next run reads the file again
        digest = hashlib.sha256(data).hexdigest()
        if relabel or not (entry and entry[2] == digest):
            extracted = yield from self._document(rel, path, data, read, entry)
            if not extracted:  # damaged: its document is kept, and every run reads it again until it reads
                if entry is not None:  # no stat matches: read again, the hash of what it held kept (not
                    # the damaged bytes' own, which an earlier release recorded: they would pass for read)
                    known[rel] = [None, None, entry[2] if entry[2] != digest else UNEXTRACTED]
                return
        known[rel] = [read.st_mtime_ns, read.st_size, digest]

    def _read(self, rel: str, path: Path) -> bytes | None:
        """The file's bytes, checked on the open file to be one the walk would index: a link
        retargeted since the walk (outside the root, or to a file `exclude` leaves out), and a
        name that is no longer a regular file (a pipe or a device swapped in), read nothing
        (logged; the next walk refuses it). The open does not wait: a pipe with no writer would
        hold it, and the run, for ever."""
        root = self.config.path.resolve()
        opened = open_regular(path)
        if opened is None:
            log.warning("source %r: %s is no longer a regular file; not indexed", self.name, rel)
            return None
        with opened as file:
            real = _opened(file.fileno()) or path.resolve()
            if not real.is_relative_to(root):
                log.warning("source %r: %s now points outside %s; not indexed", self.name, rel, root)
                return None
            if not self._target_wanted(rel, real.relative_to(root).as_posix()):
                return None
            return file.read()

    def _skipped(self, rel: str, reason: str, entry: list[Any] | None) -> Iterator[Item]:
        """A skip by policy; what was indexed of the file before goes (its old text answers nothing now)."""
        yield Skipped(id=self.doc_id(rel), reason=reason, failed=False, title=_shown(rel))
        if entry is not None and entry[2] not in (None, OVER_CAP):
            yield Deletion(id=self.doc_id(rel))

    def _document(
        self, rel: str, path: Path, data: bytes, stat: os.stat_result, entry: list[Any] | None = None
    ) -> Generator[Item, None, bool]:
        """The file's document, or a skip; returns False when its text could not be extracted (a
        failed skip: the version indexed before is kept, with the ACL the config gives it now)."""
        mime = None if path.suffix else "text/plain"
        try:
            text = extract_text(data, path.name, mime)
        except ItemError as exc:  # damaged (an error: its old version is kept), or binary bytes under a text name
            if exc.failed:
                yield Skipped(id=self.doc_id(rel), reason=str(exc), title=_shown(rel), acl=self.config.acl())
                return False
            yield from self._skipped(rel, str(exc), entry)
            return True
        if not text.strip():
            yield from self._skipped(rel, "no text", entry)
            return True
        modified = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)
        yield self.document(
            rel,
            title=document_title(data, path.name, text, mime) or _shown(rel),
            text=text,
            url=path.as_uri(),
            updated_at=modified,
            created_at=modified,
            acl=self.config.acl(),
            metadata={"path": _shown(rel), "folder": str(Path(_shown(rel)).parent), "kind": kind_of(path.name) or ""},
        )
        return True

    def _listing(self) -> _Listing:
        """Every indexable file under the root, the folders that could not be listed, the files
        met and the include globs that matched one; `ConfigError` when the root itself cannot be
        listed. A hidden file (a name starting with `.`, or in such a folder) is met only when an
        include glob naming a dot path matches it, and a hidden folder entered only when a dot
        part of such a glob matches its name (`.github/**` enters `.github`, never `.git`)."""
        root = self.config.path.resolve()
        found = _Listing()
        found_at: list[tuple[str, Path, Path]] = []  # (relative path, path, real path) of each file
        include = list(dict.fromkeys(self.config.include))
        dotted = [glob for glob in include if _dot_parts(glob)]
        dot_parts = {part for glob in dotted for part in _dot_parts(glob)}

        def unlisted(exc: OSError) -> None:
            folder = Path(exc.filename)
            if folder == root:
                raise ConfigError(f"source {self.name!r}: key 'path': {root} cannot be listed ({_reason(exc)})")
            if not isinstance(exc, _GONE):  # a folder deleted since its parent was listed: its files are gone
                found.unlisted[_printable(folder.relative_to(root).as_posix())] = _reason(exc)

        for folder, dirs, files in os.walk(root, onerror=unlisted, followlinks=False):
            dirs.sort()
            here = Path(folder).relative_to(root)
            found.folders.extend(_printable((here / d).as_posix()) for d in dirs)
            dirs[:] = [
                d
                for d in dirs
                if (not d.startswith(".") or any(fnmatch.fnmatchcase(d, part) for part in dot_parts))
                and not self._excluded_folder((here / d).as_posix())
            ]
            for name in dirs:
                if (Path(folder) / name).is_symlink():  # os.walk does not enter it
                    log.info(
                        "source %r: %s is a link to a folder; not followed",
                        self.name,
                        _printable((here / name).as_posix()),
                    )
            for name in sorted(files):
                path = Path(folder) / name
                rel = _printable(path.relative_to(root).as_posix())
                hidden = name.startswith(".") or any(part.startswith(".") for part in here.parts)
                hits = {glob for glob in (dotted if hidden else include) if _glob(glob).match(rel)}
                if hidden and not hits:
                    continue  # left out unseen, as `.git` and `.env` are
                found.met.append(rel)
                found.matched |= hits
                if not hits or _matches(rel, self.config.exclude):
                    continue
                if path.suffix.lower() not in SUFFIXES:
                    found.unread.append((rel, path.suffix))
                    continue
                real = self._regular_inside(rel, path, root)
                if real is not None and self._target_wanted(rel, real.relative_to(root).as_posix()):
                    found_at.append((rel, path, real))
        found.files = self._once_each(found_at)
        return found

    def _once_each(self, found_at: list[tuple[str, Path, Path]]) -> list[tuple[str, Path]]:
        """`found_at` ((relative path, path, real path), in walk order) with one entry per real
        file (`_file_key`: hard links of one file are one): the file under its own path when
        listed (the first of its hard links), else its first link; the others are logged."""
        chosen: dict[Any, str] = {}
        own: set[Any] = set()  # files chosen under a path that is no symbolic link
        keys = [_file_key(real) for _rel, _path, real in found_at]
        for (rel, path, real), key in zip(found_at, keys):
            if key not in chosen or (path == real and key not in own):  # no link: the folders above are none either
                chosen[key] = rel
                own |= {key} if path == real else set()
        for (rel, _path, _real), key in zip(found_at, keys):
            if chosen[key] != rel:
                log.info(
                    "source %r: %s is a link to the file indexed as %s; not indexed twice", self.name, rel, chosen[key]
                )
        return [(rel, path) for (rel, path, _real), key in zip(found_at, keys) if chosen[key] == rel]

    def _regular_inside(self, rel: str, path: Path, root: Path) -> Path | None:
        """The real path of a regular file inside the root (itself or a link's target); anything
        else is logged, saying what it is, and left out (None)."""
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            if path.is_symlink():
                log.info("source %r: %s is a broken link; not indexed", self.name, rel)
            return None  # else: deleted since the walk
        except (RuntimeError, OSError) as exc:  # a link loop: RuntimeError up to Python 3.12
            if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
                log.info("source %r: %s is a link loop; not indexed", self.name, rel)
            else:
                log.warning("source %r: %s cannot be resolved (%s); not indexed", self.name, rel, _reason(exc))
            return None
        if not real.is_relative_to(root):
            log.warning("source %r: %s points outside %s; not indexed", self.name, rel, root)
            return None
        if not real.is_file():
            log.info("source %r: %s is not a regular file; not indexed", self.name, rel)
            return None
        return real

    def _target_wanted(self, rel: str, target: str) -> bool:
        """False (logged) when `rel` is a link to a file `exclude` leaves out: a link never brings
        back what the config excludes."""
        if target == rel or not _matches(target, self.config.exclude):
            return True
        log.info("source %r: %s is a link to %s, which exclude leaves out; not indexed", self.name, rel, target)
        return False

    def _excluded_folder(self, rel: str) -> bool:
        """True when `exclude` leaves out every file under the folder `rel` whatever its name
        ("private/**"): the walk does not enter it (a locked one is no skip)."""
        return _matches(f"{rel}/{_ANY_NAME}", self.config.exclude)


_ANY_NAME = "\0"  # no file is named this: a pattern matching it matches any name


def _file_key(real: Path) -> Any:
    """What makes a file one file: its device and inode (hard links of it share them), else (it
    cannot be stat'ed now: gone since the walk) its real path."""
    try:
        stat = real.stat()
    except OSError:
        return real
    return (stat.st_dev, stat.st_ino)


def _opened(fd: int) -> Path | None:
    """Where an open file really is (Linux names it in /proc); None where the system does not say."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def _matches(rel: str, patterns: list[str]) -> bool:
    """Whether a glob matches `rel`; `**/` also matches no folder at all ("docs/**/*.md": docs/a.md)."""
    return any(_glob(p).match(rel) for p in patterns)


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """`pattern` as one expression matching what `fnmatch.fnmatchcase` matches with any of its
    `_zero_folder_forms` (built once, not for every file)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(form)})" for form in sorted(_zero_folder_forms(pattern))))


def _dot_parts(glob: str) -> list[str]:
    """The parts of `glob` naming a hidden file or folder (`.github` of `.github/**`)."""
    return [part for part in glob.split("/") if part.startswith(".")]


def _nothing_indexed(listing: _Listing, before: int | None = None) -> str:
    """Why a walk gave no file to index: the folder holds none (of those not hidden), or `include`,
    `exclude` and the types read leave every one out."""
    was = f" ({before} before)" if before is not None else ""
    if not listing.met:
        return f"the folder holds no file now{was}"
    return (
        f"no file of the folder is left to index now{was}: `include` and `exclude` leave every one out, or "
        "its type is not read"
    )


def _zero_folder_forms(pattern: str) -> set[str]:
    """`pattern` and every form of it with some of its `**/` standing for no folder."""
    forms = {pattern}
    while True:
        more = {
            f[:i] + f[i + 3 :]
            for f in forms
            for i in range(len(f))
            if f.startswith("**/", i) and (i == 0 or f[i - 1] == "/")
        }
        if more <= forms:
            return forms
        forms |= more


def _printable(rel: str) -> str:
    """`rel` as text a database stores, the same way every run and one spelling per name: the bytes
    of a name that are not UTF-8 (os gives them as surrogates) written `\\xNN`, and a backslash in
    any name doubled, so no name reads like another's escape (`caf\\xe9.md` beside `caf<E9>.md`)."""
    if "\\" not in rel and rel.isascii():
        return rel
    return os.fsencode(rel).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def _shown(rel: str) -> str:
    """`rel` (`_printable`) as a reader sees the name, in a title or `metadata.path`: its backslashes
    single again, the bytes that are not UTF-8 still `\\xNN` (the id alone must tell the two apart)."""
    return rel.replace("\\\\", "\\")


def _reason(exc: OSError) -> str:
    """What went wrong, as an operator reads it ("permission denied"), without the path."""
    what = exc.strerror or type(exc).__name__
    return what[:1].lower() + what[1:]
