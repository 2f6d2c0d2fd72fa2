"""A change of the config keys that choose what a source reads is applied by the next sync.

Each connector's incremental sync reads what changed at the service; a channel, label, folder or
glob that left the config changed nothing there. The engine keeps a digest of those keys
(`Connector.scope_keys`) with the source's state and, when it differs, reads the source whole once,
as a backfill does: what left the scope is deleted, what joined it is indexed. Run against the
sandbox's emulated services, with vectors made from the text (the search checked is lexical).
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inlet.config import Settings, parse_config
from inlet.connectors.model import Document, principals_for
from inlet.connectors.registry import available, connector_class
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import DATA_DIR
from inlet.sync.engine import Engine, RunResult
from inlet.storage.sqlite.state import SqliteState

BADEER = "robert.badeer@enron.com"
OPS, OLD = "G0PRIVOPS1", "C0OLDPROJ1"  # the Slack channels private-ops and old-project
FAST: dict[str, dict[str, Any]] = {  # no waiting between calls or tries
    "sandbox-slack": {"pace_scale": 1e6, "retry_backoff": 0.01, "max_retries": 1},
    "sandbox-gmail": {"mailboxes": [BADEER], "backoff_seconds": 0.01},
    "sandbox-drive": {"backoff_seconds": 0.01, "max_requests_per_second": 0, "retries": 1},
    "sandbox-files": {},
    "sandbox-teams": {},
    "sandbox-mail": {"mailboxes": [BADEER]},
}
# (source, key, its value for the backfill, its value for the sync that follows)
CHANGES = [
    ("sandbox-slack", "channels", ["private-ops"], ["old-project"]),
    ("sandbox-gmail", "labels", ["SENT"], ["INBOX"]),
    ("sandbox-drive", "folders", ["Engineering"], ["Operations"]),
    ("sandbox-files", "include", ["**/*.docx"], ["**/*.pptx"]),
]


@dataclass
class Scoped:
    """One sandbox source, configured with any value of one of its keys, over one index and state."""

    sb: Sandbox
    source: str
    index: Index
    state: SqliteState
    env: dict[str, str]
    path: Path

    def settings(self, **keys: Any) -> Settings:
        text, _ = self.sb.config(self.path)
        raw = tomllib.loads(text)
        raw["sources"] = [{**s, **FAST[s["name"]], **keys} for s in raw["sources"] if s["name"] == self.source]
        return parse_config(raw)

    def run(self, kind: str = "sync", scope: frozenset[str] | None = None, **keys: Any) -> RunResult:
        engine = Engine(self.settings(**keys), self.index, self.state, env=self.env)
        result = engine.run(self.source, kind, scope=scope)
        assert result.outcome in ("ok", "partial"), result.error
        return result

    def expected(self, **keys: Any) -> dict[str, str]:
        """Doc id -> title of what a plain full pass yields with `keys`."""
        conn = self.settings(**keys).connector(self.source, self.env)
        return {i.id: i.title or i.text[:80] for i in conn.load(None) if isinstance(i, Document)}

    def stored(self) -> set[str]:
        return set(self.index.catalog.source_doc_ids(self.source))

    def searchable(self, doc_id: str, title: str) -> bool:
        request = SearchRequest(query=title, k=200, sources=(self.source,), recency_half_life_days=0, mode="lexical")
        return doc_id in {hit.doc_id for hit in search(self.index, request)[0]}

    def last_kind(self) -> str | None:
        last = self.state.last_run(self.source)
        return last.kind if last else None


@pytest.fixture
def scoped(request: pytest.FixtureRequest, tmp_path: Path, text_hash_embedder: Any) -> Iterator[Scoped]:
    with Sandbox() as sb:
        _, env = sb.config(tmp_path / "index")
        settings = parse_config({"index": {"path": str(tmp_path / "index")}, "sources": []})
        with Index(settings.index, embedder=text_hash_embedder) as index:
            state = SqliteState(tmp_path / "index" / "state.db")
            try:
                yield Scoped(sb, request.param, index, state, env, tmp_path / "index")
            finally:
                state.close()


@pytest.mark.parametrize(
    ("scoped", "key", "before", "after"), CHANGES, indirect=["scoped"], ids=[c[0] for c in CHANGES]
)
def test_a_changed_scope_is_applied_by_the_next_sync(
    scoped: Scoped, key: str, before: list[str], after: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    old, new = scoped.expected(**{key: before}), scoped.expected(**{key: after})
    removed, added = set(old) - set(new), set(new) - set(old)
    assert removed and added
    scoped.run("backfill", **{key: before})
    assert scoped.stored() == set(old)
    gone = sorted(removed)[0]
    assert scoped.searchable(gone, old[gone])

    with caplog.at_level(logging.WARNING, logger="inlet.sync.engine"):
        result = scoped.run(**{key: after})
    assert scoped.stored() == set(new)
    assert result.deleted >= len(removed) and scoped.last_kind() == "backfill"
    assert not scoped.searchable(gone, old[gone])
    assert all(scoped.searchable(doc, new[doc]) for doc in sorted(added)[:3])
    told = [r.getMessage() for r in caplog.records if "changed what it reads" in r.getMessage()]
    assert told == [f"source {scoped.source!r}: its configuration changed what it reads (keys {key}); reading it whole"]

    again = scoped.run(**{key: after})  # the new scope is recorded: the next sync is incremental again
    assert scoped.last_kind() == "sync" and again.upserted == again.deleted == 0


# (source, key, its value for the backfill, the same misspelt, a name the error offers for it)
TYPOS = [
    ("sandbox-slack", "channels", ["private-ops"], ["privte-ops"], "'private-ops'"),
    ("sandbox-drive", "folders", ["Engineering"], ["Engneering"], "'Engineering'"),
    ("sandbox-files", "include", ["Design/**"], ["Desing/**"], "'Design/**'"),
    ("sandbox-teams", "teams", ["Engineering"], ["Engneering"], "'Engineering'"),
    ("sandbox-mail", "folders", ["Inbox"], ["Inboxx"], "'Inbox'"),
]


@pytest.mark.parametrize(
    ("scoped", "key", "good", "typo", "offered"), TYPOS, indirect=["scoped"], ids=[t[0] for t in TYPOS]
)
def test_a_scope_that_matches_nothing_fails_the_sync_and_deletes_nothing(
    scoped: Scoped, key: str, good: list[str], typo: list[str], offered: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelt value of a key that chooses what a source reads emptied the source (`ok — 0
    upserted, 154 deleted`): the sync now fails naming the key, the value and the closest name,
    keeps every document, and the corrected key's sync finds them all in place. No recent pass
    (whose checkpoints are never saved): the failed full pass's own checkpoints must not let the
    corrected run resume past what it holds."""
    good_keys, typo_keys = {key: good, "recent_first": "0"}, {key: typo, "recent_first": "0"}
    scoped.run("backfill", **good_keys)
    held = scoped.stored()
    assert held

    result = Engine(scoped.settings(**typo_keys), scoped.index, scoped.state, env=scoped.env).run(scoped.source)
    assert result.outcome == "failed" and result.deleted == 0, result
    assert f"key {key!r}" in (result.error or "") and repr(typo[0]) in (result.error or "")
    assert offered in (result.error or "")
    assert scoped.stored() == held

    fixed = scoped.run(**good_keys)  # one pass over the source as configured: nothing was lost
    assert fixed.deleted == 0 and scoped.stored() == held
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="inlet.sync.engine"):
        again = scoped.run(**good_keys)  # the scope recorded is the corrected one: no second full pass
    assert scoped.last_kind() == "sync" and again.upserted == again.deleted == 0
    assert not [r for r in caplog.records if "changed what it reads" in r.getMessage()]


@pytest.mark.parametrize("scoped", ["sandbox-slack"], indirect=True)
def test_an_index_without_a_recorded_scope_records_it_without_a_full_pass(scoped: Scoped) -> None:
    scoped.run("backfill", channels=["private-ops"])
    source = scoped.state.source(scoped.source)
    source.scope = None  # as an index made before scopes were recorded
    scoped.state.save_source(source)
    kept = scoped.stored()

    scoped.run(channels=["old-project"])
    assert scoped.last_kind() == "sync" and scoped.state.source(scoped.source).generation == source.generation
    assert scoped.stored() & kept  # not read whole: the channel that left the config is still indexed
    now = scoped.settings(channels=["old-project"]).connector(scoped.source, scoped.env).scope_fingerprint()
    assert scoped.state.source(scoped.source).scope == now


@pytest.mark.parametrize("scoped", ["sandbox-slack"], indirect=True)
def test_keys_with_no_digest_are_recorded_and_an_unfinished_backfill_still_resumes(scoped: Scoped) -> None:
    scoped.run("backfill", channels=["private-ops"])
    source = scoped.state.source(scoped.source)
    full = source.scope
    assert full is not None and "channels" in full
    source.scope = {"channels": full["channels"]}  # the other keys: as if a newer inlet added them
    scoped.state.save_source(source)
    scoped.run(channels=["private-ops"])
    assert scoped.last_kind() == "sync" and scoped.state.source(scoped.source).scope == full

    source.phase, source.scope = "backfill", None  # an unfinished backfill of an index made before digests
    scoped.state.save_source(source)
    scoped.run(channels=["private-ops"])  # a sync asked of an unfinished backfill resumes it
    assert scoped.last_kind() == "backfill" and scoped.state.source(scoped.source).scope == full


@pytest.mark.parametrize("scoped", ["sandbox-slack"], indirect=True)
def test_a_scoped_event_run_leaves_the_changed_scope_to_the_next_sync(scoped: Scoped) -> None:
    scoped.run("backfill", channels=["private-ops"])
    kept, recorded = scoped.stored(), scoped.state.source(scoped.source).scope
    assert kept and all(doc.startswith(f"{scoped.source}:{OPS}:") for doc in kept)

    scoped.run(scope=frozenset({OLD}), channels=["old-project"])  # an event of the newly selected channel
    assert scoped.last_kind() == "event" and scoped.stored() > kept  # it read that channel, pruned nothing
    assert scoped.state.source(scoped.source).scope == recorded

    scoped.run(channels=["old-project"])
    assert scoped.last_kind() == "backfill" and scoped.stored() and not scoped.stored() & kept


def test_a_changed_channel_list_of_a_slack_export_is_applied_by_the_next_sync(
    tmp_path: Path, text_hash_embedder: Any
) -> None:
    def settings(channels: list[str]) -> Settings:
        export = {"path": str(DATA_DIR / "slack-export-sample.zip"), "channels": channels}
        return parse_config(
            {"index": {"path": str(tmp_path)}, "sources": [{"name": "export", "type": "slack_export", **export}]}
        )

    with Index(settings([]).index, embedder=text_hash_embedder) as index:
        state = SqliteState(tmp_path / "state.db")
        try:
            Engine(settings(["enrique"]), index, state).run("export", "backfill")
            before = set(index.catalog.source_doc_ids("export"))
            result = Engine(settings(["traveling-sailor"]), index, state).run("export", "sync")
            after = set(index.catalog.source_doc_ids("export"))
        finally:
            state.close()
    assert before and after and not before & after  # the two channels' threads, nothing of the first left
    assert result.deleted == len(before) and result.upserted == len(after)


@pytest.mark.parametrize("earlier", [False, True], ids=["recorded", "earlier-inlet"])
@pytest.mark.parametrize("kind", ["mail_archive", "slack_export"])
def test_a_changed_static_acl_reaches_the_items_already_indexed(
    tmp_path: Path, text_hash_embedder: Any, kind: str, earlier: bool
) -> None:
    """A source indexed public, whose config then lists its readers (as an operator does after
    finding it public), is read whole by the next sync: an unchanged message or export would
    otherwise keep the public ACL it was indexed with. So is one whose state an earlier inlet
    wrote, with no record of the ACL keys (`earlier`): what ACL its items carry is unknown."""
    if kind == "mail_archive":
        (tmp_path / "mail").mkdir()
        (tmp_path / "mail" / "1.eml").write_text(
            "From: a@example.com\nTo: b@example.com\nSubject: zebra salary\nMessage-ID: <1@x>\n"
            "Date: Mon, 1 Jan 2024 10:00:00 +0000\n\nsecret salary table for zebra project\n"
        )
        where: dict[str, Any] = {"path": str(tmp_path / "mail")}
    else:
        where = {"path": str(DATA_DIR / "slack-export-sample.zip"), "channels": ["enrique"]}

    def settings(**acl: Any) -> Settings:
        source = {"name": "s", "type": kind, **where, **acl}
        return parse_config({"index": {"path": str(tmp_path / "index")}, "sources": [source]})

    def seen_by(index: Index, user: str) -> set[str]:
        """The source's documents `user` may read (every one of them is under the one static ACL)."""
        ids = sorted(index.catalog.source_doc_ids("s"))
        assert ids
        principals = tuple(principals_for(user) or ())
        return {doc for doc in ids if index.document(doc, principals) is not None}

    with Index(settings().index, embedder=text_hash_embedder) as index:
        state = SqliteState(tmp_path / "state.db")
        try:
            Engine(settings(), index, state).run("s", "backfill")
            everything = set(index.catalog.source_doc_ids("s"))
            assert seen_by(index, "mallory@evil.com") == everything  # public, as configured
            if earlier:
                source = state.source("s")
                source.scope = None  # as the state of a release before scope digests
                state.save_source(source)
            result = Engine(settings(users=["alice@example.com"]), index, state).run("s", "sync")
            assert not seen_by(index, "mallory@evil.com") and seen_by(index, "alice@example.com") == everything
            last = state.last_run("s")
            assert result.outcome == "ok" and last is not None and last.kind == "backfill"  # read whole once
            assert set(index.catalog.source_doc_ids("s")) == everything
        finally:
            state.close()


def test_every_scope_key_is_a_key_of_its_connector_s_config() -> None:
    declared = {name: connector_class(name) for name in available()}
    assert {name for name, cls in declared.items() if cls.scope_keys} >= {
        "slack",
        "gmail",
        "google_drive",
        "microsoft_files",
    }
    for name, cls in declared.items():
        assert cls.scope_keys <= set(cls.Config.model_fields), name
