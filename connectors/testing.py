"""The connector conformance suite, for the built-in connectors' tests and a plug-in's own.

Invariant: every connector type passes the same contract checks, run against a source configured
the way a user would (a `[[sources]]` table through `parse_config`, so the type must be registered
in the `inlet.connectors` entry-point group): config errors name the key; `check` passes with good
credentials and names the source with bad ones; a full pass yields well-formed, unique documents
and ends with a JSON checkpoint; passes are deterministic; an unchanged source yields no changed
content; resuming from a mid-pass checkpoint loses nothing; `live_ids` (when implemented) matches a
pass; `since` limits a backfill.

A plug-in's tests provide a `conformance_case` fixture (a `Case`) and subclass the suite:

    from inlet.connectors.testing import Case, ConformanceSuite

    @pytest.fixture(scope="module")
    def conformance_case(tmp_path_factory):
        return Case({"name": "my-notes", "type": "notes", "path": "..."})

    class TestNotesConnector(ConformanceSuite):
        pass

Each case is loaded once per class (two full passes, one incremental pass from the final
checkpoint, one resume from a mid-pass checkpoint); the tests assert on those passes. The checks
are plain functions (`check_*`) that raise `AssertionError`; pytest is needed only for the
`ConformanceSuite` class, which exists when pytest is installed (inlet does not require it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from inlet.config import parse_config
from inlet.errors import ConfigError, CredentialsError

from . import registry
from .base import Connector
from .model import Checkpoint, Deletion, Document, Item, Skipped


@dataclass
class Case:
    """One configured source: its `[[sources]]` table, its secrets, and how to spoil its credentials.

    `api`: the source is a network service: its documents' URLs are http(s) and the case must say
    how to spoil its credentials (`bad_raw` config overrides, or `bad_env` secrets, it refuses)."""

    raw: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    bad_raw: dict[str, Any] | None = None
    bad_env: dict[str, str] | None = None
    api: bool = False

    def connector(self, spoiled: bool = False) -> Connector:
        raw = self.raw | (self.bad_raw or {}) if spoiled else self.raw
        env = self.bad_env or self.env if spoiled else self.env
        return parse_config({"sources": [raw]}).connector(raw["name"], env)

    @property
    def spoilable(self) -> bool:
        return self.bad_raw is not None or self.bad_env is not None


@dataclass
class Pass:
    items: list[Item]

    @property
    def docs(self) -> list[Document]:
        return [i for i in self.items if isinstance(i, Document)]

    @property
    def hashes(self) -> dict[str, tuple[str, str]]:
        return {d.id: (d.content_hash(), d.meta_hash()) for d in self.docs}

    @property
    def checkpoints(self) -> list[int]:
        return [n for n, i in enumerate(self.items) if isinstance(i, Checkpoint)]

    def final_state(self) -> dict[str, Any]:
        last = self.items[-1]
        assert isinstance(last, Checkpoint), f"a pass must end with a Checkpoint, not {type(last).__name__}"
        return _stored(last.state)


def _stored(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint as the engine stores and reloads it (JSON)."""
    return json.loads(json.dumps(state))  # type: ignore[no-any-return]


@dataclass
class Runs:
    """The passes the checks look at."""

    case: Case
    first: Pass
    second: Pass
    incremental: Pass
    resumed_at: int  # index in `first` of the checkpoint the resume started from
    resumed: Pass

    @classmethod
    def of(cls, case: Case) -> Runs:
        first = Pass(list(case.connector().load(None)))
        second = Pass(list(case.connector().load(None)))
        incremental = Pass(list(case.connector().load(first.final_state())))
        marks = first.checkpoints[:-1] or first.checkpoints
        at = marks[len(marks) // 2]
        mid = first.items[at]
        assert isinstance(mid, Checkpoint)
        resumed = Pass(list(case.connector().load(_stored(mid.state))))
        return cls(case, first, second, incremental, at, resumed)


# --- the checks ---------------------------------------------------------------------------------


def check_config_forbids_unknown_keys_and_names_missing_ones(case: Case) -> None:
    raw = case.raw
    try:
        parse_config({"sources": [raw | {"no_such_key": 1}]})
    except ConfigError as exc:
        assert "key 'no_such_key': unknown key" in str(exc) and raw["name"] in str(exc), exc
    else:
        raise AssertionError("an unknown key must be a ConfigError naming the source and the key")
    cls = registry.connector_class(raw["type"])
    required = [name for name, f in cls.Config.model_fields.items() if f.is_required()]
    assert {"name", "type"} <= set(required)
    for key in required:
        try:
            parse_config({"sources": [{k: v for k, v in raw.items() if k != key}]})
        except ConfigError as exc:
            assert f"key '{key}'" in str(exc) and ("required" in str(exc) or "missing" in str(exc)), exc
        else:
            raise AssertionError(f"a missing key {key!r} must be a ConfigError naming it")


def check_credentials(case: Case) -> None:
    case.connector().check()
    if case.api:
        assert case.spoilable, "API cases say how to spoil their credentials (bad_raw or bad_env)"
    if not case.spoilable:
        return
    try:
        case.connector(spoiled=True).check()
    except CredentialsError as exc:
        assert exc.source == case.raw["name"] and repr(case.raw["name"]) in str(exc), exc
    else:
        raise AssertionError("spoiled credentials must raise CredentialsError naming the source")


def check_full_pass_is_well_formed(runs: Runs) -> None:
    name, type_name = runs.case.raw["name"], runs.case.raw["type"]
    docs = runs.first.docs
    assert docs, "a full pass over the sample yields documents"
    assert isinstance(runs.first.items[-1], Checkpoint)
    for doc in docs:
        assert doc.id.startswith(f"{name}:") and len(doc.id) > len(name) + 1, doc.id
        assert (doc.source, doc.source_type) == (name, type_name), doc.id
        assert doc.text.strip(), f"{doc.id} has no text"
        assert doc.url, f"{doc.id} has no url"
        assert doc.acl.public or doc.acl.users or doc.acl.domains, f"{doc.id} is visible to no user"
        if runs.case.api:
            assert doc.url.startswith(("http://", "https://")), doc.url
        for stamp in (doc.created_at, doc.updated_at):
            assert stamp is None or stamp.utcoffset() == timedelta(0), f"{doc.id}: {stamp!r} is not UTC"
        for key, value in doc.metadata.items():
            flat = isinstance(value, (str, int, float, bool)) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            assert flat, f"{doc.id}: metadata {key!r} is not flat: {value!r}"
    assert sum(d.updated_at is not None for d in docs) == len(docs), "every document has updated_at"


def check_ids_are_unique_within_a_pass(runs: Runs) -> None:
    ids = [d.id for d in runs.first.docs]
    assert len(ids) == len(set(ids))


def check_checkpoints_are_json(runs: Runs) -> None:
    for n in runs.first.checkpoints:
        item = runs.first.items[n]
        assert isinstance(item, Checkpoint)
        assert _stored(item.state) == item.state, "a checkpoint must survive a JSON round trip"


def check_skipped_items_have_ids(runs: Runs) -> None:
    name = runs.case.raw["name"]
    for item in runs.first.items:
        if isinstance(item, Skipped):
            assert item.id.startswith(f"{name}:") and item.reason, item


def check_unchanged_source_yields_no_changed_content(runs: Runs) -> None:
    first = runs.first.hashes
    inc = runs.incremental  # may yield nothing at all (an unchanged export)
    assert [i for i in inc.items if isinstance(i, Deletion)] == []
    for doc in inc.docs:
        assert doc.id in first, f"{doc.id} appeared from nowhere"
        assert doc.content_hash() == first[doc.id][0], f"{doc.id} changed content without a change"


def check_full_passes_are_deterministic(runs: Runs) -> None:
    assert runs.second.hashes == runs.first.hashes


def check_resume_loses_nothing(runs: Runs) -> None:
    before = {i.id for i in runs.first.items[: runs.resumed_at] if isinstance(i, Document)}
    after = {d.id for d in runs.resumed.docs}
    assert before | after == set(runs.first.hashes)
    assert [i for i in runs.resumed.items if isinstance(i, Deletion)] == []
    for doc in runs.resumed.docs:
        assert (doc.content_hash(), doc.meta_hash()) == runs.first.hashes[doc.id], "re-yielded docs are identical"


def check_live_ids_match_a_full_pass(runs: Runs) -> bool:
    """False when the connector does not implement `live_ids` (nothing checked)."""
    try:
        live = set(runs.case.connector().live_ids())
    except NotImplementedError:
        return False
    docs = set(runs.first.hashes)
    skipped = {i.id for i in runs.first.items if isinstance(i, Skipped)}
    assert docs <= live, f"live_ids() misses {sorted(docs - live)[:5]}: a prune would delete them"
    assert live <= docs | skipped, f"live_ids() has ids no pass yields: {sorted(live - docs - skipped)[:5]}"
    return True


def check_since_limits_a_backfill(runs: Runs) -> None:
    stamps = sorted(d.updated_at for d in runs.first.docs if d.updated_at is not None)
    since = stamps[len(stamps) // 2]
    recent = Pass(list(runs.case.connector().load(None, since=since))).docs
    assert recent, "the newer half of the documents is yielded"
    assert len(recent) < len(runs.first.docs) or stamps[0] == since
    for doc in recent:
        assert doc.updated_at is not None and doc.updated_at >= since, f"{doc.id} is older than since"
    future = since.replace(year=2100)
    assert Pass(list(runs.case.connector().load(None, since=future))).docs == []


try:
    import pytest
except ImportError:  # pragma: no cover - the checks above work without pytest
    pass
else:

    class ConformanceSuite:
        """The checks as pytest tests: subclass it as `Test...` and provide a `conformance_case` fixture."""

        @pytest.fixture(scope="class")
        @staticmethod
        def conformance_runs(conformance_case: Case) -> Runs:
            return Runs.of(conformance_case)

        def test_config_forbids_unknown_keys_and_names_missing_ones(self, conformance_case: Case) -> None:
            check_config_forbids_unknown_keys_and_names_missing_ones(conformance_case)

        def test_check_passes_with_good_credentials_and_names_the_source_with_bad(self, conformance_case: Case) -> None:
            check_credentials(conformance_case)

        def test_a_full_pass_yields_well_formed_documents(self, conformance_runs: Runs) -> None:
            check_full_pass_is_well_formed(conformance_runs)

        def test_ids_are_unique_within_a_pass(self, conformance_runs: Runs) -> None:
            check_ids_are_unique_within_a_pass(conformance_runs)

        def test_checkpoints_are_json(self, conformance_runs: Runs) -> None:
            check_checkpoints_are_json(conformance_runs)

        def test_skipped_items_have_ids(self, conformance_runs: Runs) -> None:
            check_skipped_items_have_ids(conformance_runs)

        def test_an_unchanged_source_yields_no_changed_content(self, conformance_runs: Runs) -> None:
            check_unchanged_source_yields_no_changed_content(conformance_runs)

        def test_full_passes_are_deterministic(self, conformance_runs: Runs) -> None:
            check_full_passes_are_deterministic(conformance_runs)

        def test_resuming_from_a_mid_pass_checkpoint_loses_nothing(self, conformance_runs: Runs) -> None:
            if conformance_runs.resumed_at == len(conformance_runs.first.items) - 1:
                pytest.skip("the sample pass yields no checkpoint before its last: a crash restarts the pass")
            check_resume_loses_nothing(conformance_runs)

        def test_live_ids_match_a_full_pass(self, conformance_runs: Runs) -> None:
            if not check_live_ids_match_a_full_pass(conformance_runs):
                pytest.skip(f"{conformance_runs.case.raw['type']} does not implement live_ids()")

        def test_since_limits_a_backfill_to_recent_documents(self, conformance_runs: Runs) -> None:
            check_since_limits_a_backfill(conformance_runs)
