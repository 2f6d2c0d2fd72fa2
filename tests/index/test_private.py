"""The index folder and everything in it are private to its owner (other accounts read nothing)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index.store import Index
from inlet.storage.lock import FileLock
from inlet.storage.sqlite.catalog import SqliteCatalog
from inlet.storage.sqlite.state import SqliteState


def modes(root: Path) -> dict[str, int]:
    found = {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}
    return {".": stat.S_IMODE(root.stat().st_mode), **found}


def test_a_new_index_folder_is_0700_and_its_files_0600(tmp_path: Path, embedder: object) -> None:
    old = os.umask(0o022)  # the usual default, which would give 0755 folders and 0644 files
    try:
        path = tmp_path / "deep" / "ix"
        with Index(IndexConfig(path=path), embedder=embedder) as index:  # type: ignore[arg-type]
            index.apply(
                [
                    Document(
                        id="s:1",
                        source="s",
                        source_type="files",
                        title="Secret",
                        text="salary bands",
                        acl=ACL(users=["hr@example.com"]),
                    )
                ]
            )
            state = SqliteState(path / "state.db")
            state.close()
        found = modes(path)
    finally:
        os.umask(old)
    assert {"catalog.db", "state.db", "index.lock", "chroma"} <= set(found)
    assert any(name.startswith("chroma/") and not (path / name).is_dir() for name in found)
    loose = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert loose == {}
    assert os.umask(0o022) == 0o022  # the process umask was given back


def test_a_catalog_opened_first_by_a_read_only_command_is_private(tmp_path: Path) -> None:
    # `inlet status` on a new index opens the catalog before anything made the folder: the
    # backfill after it writes every restricted document's text into that file.
    old = os.umask(0o022)
    try:
        path = tmp_path / "ix"
        SqliteCatalog(path / "catalog.db").close()
        found = modes(path)
    finally:
        os.umask(old)
    assert "catalog.db" in found
    assert {name: oct(mode) for name, mode in found.items() if mode & 0o077} == {}


def test_a_folder_open_to_others_is_reported_at_start(
    tmp_path: Path, embedder: object, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ix"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="inlet.storage.private"):
        with Index(IndexConfig(path=path), embedder=embedder):  # type: ignore[arg-type]
            pass
    warnings = [r.getMessage() for r in caplog.records if r.name == "inlet.storage.private"]
    assert len(warnings) == 1 and "chmod -R go-rwx" in warnings[0] and str(path) in warnings[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o755  # reported, not changed behind the owner's back


def test_a_source_lease_file_and_its_folder_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        lock = FileLock(tmp_path / "ix" / "locks" / "docs.lock")
        assert lock.acquire(source="docs")
        lock.release()
    finally:
        os.umask(old)
    assert modes(tmp_path / "ix" / "locks") == {".": 0o700, "docs.lock": 0o600}
