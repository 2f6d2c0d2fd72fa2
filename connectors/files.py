"""The `files` connector: a folder of .md, .txt, .html, .pdf and .docx files.

The reference connector, small enough to copy. Its checkpoint maps each file to (mtime, size,
content hash), so a re-sync reads only files whose mtime or size moved, re-yields only those whose
bytes changed, and yields a deletion for each file that vanished. Nothing outside the root is
read: paths are resolved and symlinks that leave the root are refused.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import Field

from inlet.errors import ItemError

from .base import ConfigPath, FolderConfig, FolderConnector
from .extract import document_title, extract_text, kind_of
from .model import Checkpoint, Deletion, Item, Progress, Skipped

log = logging.getLogger(__name__)

# "": plain text (e.g. mail dumps)
SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ""}


class FilesConfig(FolderConfig):
    path: ConfigPath = Field(description="the folder to index")
    include: list[str] = Field(default_factory=lambda: ["**/*"], description="globs of files to index")
    exclude: list[str] = Field(default_factory=list, description="globs of files to leave out")
    max_file_bytes: int = Field(20_000_000, ge=1, description="larger files are skipped")
    checkpoint_every: int = Field(20, ge=1, description="files read between checkpoints")


class FilesConnector(FolderConnector[FilesConfig]):
    type = "files"
    Config = FilesConfig
    deletions_from_checkpoint = True
    recent_first = True  # `since` filters by time at the service (base.Connector.recent_first)

    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        self.check()
        known: dict[str, list[Any]] = dict((checkpoint or {}).get("files", {}))
        present: set[str] = set()
        entries = list(self._walk())  # counted first: the bar gets a total and a time left
        yield Progress(total=len(entries), unit="files")
        for n, (rel, path) in enumerate(entries, 1):
            yield Progress(done=n - 1)
            present.add(rel)
            stat = path.stat()
            if since and stat.st_mtime < since.timestamp():
                continue
            entry = known.get(rel)
            if entry and entry[0] == stat.st_mtime_ns and entry[1] == stat.st_size:
                continue
            if stat.st_size > self.config.max_file_bytes:
                yield Skipped(
                    id=self.doc_id(rel),
                    reason=f"larger than {self.config.max_file_bytes} bytes",
                    failed=False,
                    title=rel,
                )
                continue
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if not (entry and entry[2] == digest):
                yield from self._document(rel, path, data, stat)
            known[rel] = [stat.st_mtime_ns, stat.st_size, digest]
            if n % self.config.checkpoint_every == 0:
                yield Checkpoint(state={"files": dict(known)})
        yield Progress(done=len(entries))
        for rel in sorted(set(known) - present):
            del known[rel]
            yield Deletion(id=self.doc_id(rel))
        yield Checkpoint(state={"files": dict(known)})

    def live_ids(self) -> Iterator[str]:
        self.check()  # a vanished folder is an error, not "every file was deleted"
        return (self.doc_id(rel) for rel, _ in self._walk())

    def _document(self, rel: str, path: Path, data: bytes, stat: os.stat_result) -> Iterator[Item]:
        extract_name = path.name if path.suffix else path.name + ".txt"
        try:
            text = extract_text(data, extract_name)
        except ItemError as exc:
            yield Skipped(id=self.doc_id(rel), reason=str(exc), title=rel)
            return
        if not text.strip():
            yield Skipped(id=self.doc_id(rel), reason="no text", failed=False, title=rel)
            return
        modified = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)
        yield self.document(
            rel,
            title=document_title(data, extract_name, text) or rel,
            text=text,
            url=path.as_uri(),
            updated_at=modified,
            created_at=modified,
            acl=self.config.acl(),
            metadata={"path": rel, "folder": str(Path(rel).parent), "kind": kind_of(path.name) or ""},
        )

    def _walk(self) -> Iterator[tuple[str, Path]]:
        """(relative path, path) of every indexable file under the root, in a stable order."""
        root = self.config.path.resolve()
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in sorted(files):
                path = Path(folder) / name
                rel = path.relative_to(root).as_posix()
                if name.startswith(".") or path.suffix.lower() not in SUFFIXES or not self._wanted(rel):
                    continue
                real = path.resolve()
                if not real.is_relative_to(root) or not real.is_file():
                    log.warning("source %r: %s points outside %s; not indexed", self.name, rel, root)
                    continue
                yield rel, path

    def _wanted(self, rel: str) -> bool:
        def matches(patterns: list[str]) -> bool:
            return any(
                fnmatch.fnmatchcase(rel, p) or (p.startswith("**/") and fnmatch.fnmatchcase(rel, p[3:]))
                for p in patterns
            )

        return matches(self.config.include) and not matches(self.config.exclude)
