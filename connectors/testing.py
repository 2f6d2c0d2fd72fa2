"""The connector conformance suite, for the built-in connectors' tests and a plug-in's own.

Invariant: every connector type passes the same contract checks, run against a source configured
the way a user would (a `[[sources]]` table through `parse_config`, so the type must be registered
in the `inlet.connectors` entry-point group): config errors name the key; `check` passes with good
credentials and names the source with bad ones; a full pass yields well-formed, unique documents
(visible to someone, their ACL users e-mail addresses: a group's name there is a group not
expanded), no `Deletion` (there is nothing to delete yet) and ends with a JSON checkpoint; every
pass yields inlet items only (`ITEMS`), each the source's (`source:...`); passes are deterministic;
an unchanged source yields no changed content; resuming from a mid-pass checkpoint loses nothing;
`live_ids` (when implemented) matches a pass; `since` limits a backfill; and, when the case can
change its source (`Case.mutate`), an incremental pass yields the edit and the deletion, with the
right ids, resuming it from any of its mid-pass checkpoints still delivers both, a further
incremental pass from its final checkpoint yields neither again, and the full pass resumed from its
first mid-pass checkpoint after the deleted item loses nothing that still exists (a page number or
offset checkpoint does).

A plug-in's tests provide a `conformance_case` fixture (a `Case`) and subclass the suite:

    from inlet.connectors.testing import Case, ConformanceSuite

    @pytest.fixture(scope="module")
    def conformance_case(tmp_path_factory):
        return Case({"name": "my-notes", "type": "notes", "path": "..."})

    class TestNotesConnector(ConformanceSuite):
        pass

Each case is loaded once per class, every pass before any test looks at one (two full passes, one
incremental pass from the final checkpoint, one resume from a mid-pass checkpoint, two `since`
passes, `live_ids`, then `mutate`, an incremental pass after it, resumes of that pass from up to
`RESUMES` of its distinct mid-pass checkpoints, one more incremental pass from its final one, and
the full pass resumed again from its first mid-pass checkpoint after the deleted item);
the tests assert on those passes. The connector is called as the engine calls it: its httpx
errors leave as inlet's typed errors naming the source (`kit.transport.http_errors`), in `check`
too. The checks are plain functions (`check_*`) that raise `AssertionError` with a message naming
the ids at fault (pytest does not rewrite the asserts of an installed module); pytest is needed
only for the `ConformanceSuite` class, which exists when pytest is installed (inlet does not
require it).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from inlet.config import parse_config
from inlet.errors import ConfigError, CredentialsError

from . import registry
from .base import Connector
from .kit.transport import http_errors
from .model import AclUpdate, Checkpoint, Deletion, Document, Item, Skipped, not_an_item, not_json, well_formed_user

SHOWN = 5  # ids a failure message names at most
RESUMES = 4  # mid-pass checkpoints of the incremental pass after `Case.mutate` resumed from, at most


@dataclass(frozen=True, kw_only=True)
class Change:
    """What `Case.mutate` did at the source: the document ids of the item whose text it edited and
    of the item it deleted (both yielded by a full pass before). `edited` is None for a source
    whose items cannot be edited (mail: a message never changes once sent)."""

    edited: str | None
    deleted: str


@dataclass
class Case:
    """One configured source: its `[[sources]]` table, its secrets, and how to spoil its credentials.

    `api`: the source is a network service: its documents' URLs are http(s) and the case must say
    how to spoil its credentials (`bad_raw` config overrides, or `bad_env` secrets, it refuses).
    `mutate`: optional; called once, after every other pass, to edit one item's text (when the
    source's items can be edited) and delete another at the source; returns their document ids.
    Delete one of the first items a full pass lists: the full pass resumed, after the change, from
    its first mid-pass checkpoint after that item must still yield every item after the checkpoint
    (an offset would skip one); the check is skipped, saying so, when no such checkpoint comes
    before the pass's last.
    An incremental pass from the first full pass's final checkpoint must then yield the edited
    document and a `Deletion` of the other (also when resumed from one of its mid-pass
    checkpoints), and a pass from its final checkpoint neither of them again."""

    raw: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    bad_raw: dict[str, Any] | None = None
    bad_env: dict[str, str] | None = None
    api: bool = False
    mutate: Callable[[], Change] | None = None

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    def connector(self, spoiled: bool = False) -> Connector:
        raw = self.raw | (self.bad_raw or {}) if spoiled else self.raw
        env = self.bad_env or self.env if spoiled else self.env
        return parse_config({"sources": [raw]}).connector(raw["name"], env)

    def load(self, checkpoint: dict[str, Any] | None, since: datetime | None = None) -> Pass:
        """One pass of a fresh connector, its httpx errors inlet's as in a run."""
        with http_errors(self.name):
            return Pass(list(self.connector().load(checkpoint, since=since)))

    def live(self) -> set[str] | None:
        """`live_ids()` of a fresh connector, or None when it does not implement it."""
        try:
            with http_errors(self.name):
                return set(self.connector().live_ids())
        except NotImplementedError:
            return None

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
    def deletions(self) -> list[str]:
        return [i.id for i in self.items if isinstance(i, Deletion)]

    @property
    def hashes(self) -> dict[str, tuple[str, str]]:
        return {d.id: (d.content_hash(), d.meta_hash()) for d in self.docs}

    @property
    def checkpoints(self) -> list[int]:
        return [n for n, i in enumerate(self.items) if isinstance(i, Checkpoint)]

    def final_state(self) -> dict[str, Any]:
        last = self.items[-1] if self.items else None
        assert isinstance(last, Checkpoint), f"a pass must end with a Checkpoint, not {type(last).__name__}"
        return _reloaded(last.state)


def _stored(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint as the engine stores and reloads it (JSON)."""
    return json.loads(json.dumps(state))  # type: ignore[no-any-return]


def _reloaded(state: dict[str, Any]) -> dict[str, Any]:
    """`_stored`, or a copy of a checkpoint that is not JSON (`check_checkpoints_are_json` says
    where), so the other checks still run."""
    try:
        return _stored(state)
    except (TypeError, ValueError):
        return copy.deepcopy(state)


class _Tried:
    """What a call returned, or what it raised (raised again where a check looks at it)."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        try:
            self.value = call()
        except Exception as exc:
            self.error = exc

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(repr=False)
class Runs:
    """The passes the checks look at, all read before any check runs (`Case.mutate` changes the
    source last)."""

    case: Case
    first: Pass
    second: Pass
    incremental: Pass
    resumed_at: int  # index in `first` of the checkpoint the resume started from
    resumed: Pass
    since: _Tried  # (since, the pass since then, the pass since a time in the future), or None: no stamps
    live: _Tried  # set of ids `live_ids` lists, or None: not implemented
    change: Change | None = None
    changed: Pass | None = None  # the incremental pass after `case.mutate`
    changed_resumed: list[tuple[int, Pass]] = field(default_factory=list)  # (index in `changed`, pass from there)
    again: Pass | None = None  # an incremental pass from `changed`'s final checkpoint
    shifted_at: int = 0  # index in `first` of its first mid-pass checkpoint after the deleted item
    shifted: Pass | None = None  # the first full pass resumed from there after `case.mutate`

    def __repr__(self) -> str:  # a failing test's arguments are shown: not thousands of items
        return f"Runs({self.case.name!r}: {len(self.first.items)} items in a full pass)"

    @classmethod
    def of(cls, case: Case) -> Runs:
        first = case.load(None)
        second = case.load(None)
        final = first.final_state()
        incremental = case.load(final)
        marks = first.checkpoints[:-1] or first.checkpoints
        at = marks[len(marks) // 2]
        mid = first.items[at]
        assert isinstance(mid, Checkpoint)
        resumed = case.load(_reloaded(mid.state))
        runs = cls(
            case, first, second, incremental, at, resumed, _Tried(lambda: _since(case, first)), _Tried(case.live)
        )
        if case.mutate is not None:
            runs.change = case.mutate()
            runs.changed = changed = case.load(final)
            runs.changed_resumed = [(n, case.load(_reloaded(state))) for n, state in _mid_states(changed)]
            runs.again = case.load(changed.final_state())
            later = _checkpoints_after(first, runs.change.deleted)
            if later:  # a backfill killed past the deleted item before the change, resumed after it
                runs.shifted_at, mark = later[0], first.items[later[0]]
                assert isinstance(mark, Checkpoint)
                runs.shifted = case.load(_reloaded(mark.state))
        return runs

    def passes(self) -> Iterable[tuple[str, Pass, bool]]:
        """Every pass read: what it was, the pass, whether it started from no checkpoint."""
        yield "the first full pass", self.first, True
        yield "the second full pass", self.second, True
        yield "the incremental pass", self.incremental, False
        yield "the resumed pass", self.resumed, False
        if self.since.error is None and self.since.value is not None:
            yield "the pass since a time", self.since.value[1], True
            yield "the pass since a future time", self.since.value[2], True
        if self.changed is not None:
            yield "the incremental pass after Case.mutate", self.changed, False
        for n, run in self.changed_resumed:
            yield f"the pass resumed from item {n} of the incremental pass after Case.mutate", run, False
        if self.again is not None:
            yield "the incremental pass after that one", self.again, False
        if self.shifted is not None:
            yield f"the full pass resumed from item {self.shifted_at} after Case.mutate", self.shifted, False


def _checkpoints_after(run: Pass, doc_id: str) -> list[int]:
    """The positions of `run`'s checkpoints before its last that come after the document `doc_id`
    (none when the pass does not yield it)."""
    at = next((n for n, i in enumerate(run.items) if isinstance(i, Document) and i.id == doc_id), None)
    return [] if at is None else [n for n in run.checkpoints[:-1] if n > at]


def _mid_states(run: Pass) -> list[tuple[int, dict[str, Any]]]:
    """The distinct checkpoints `run` yields before its last, each where it first appears, at most
    `RESUMES` of them spread over the pass (each costs a pass)."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for n in run.checkpoints[:-1]:
        item = run.items[n]
        assert isinstance(item, Checkpoint)
        state = _reloaded(item.state)
        found.setdefault(json.dumps(state, sort_keys=True, default=repr), (n, state))
    marks = list(found.values())
    if len(marks) <= RESUMES:
        return marks
    return [marks[round(k * (len(marks) - 1) / (RESUMES - 1))] for k in range(RESUMES)]


def _since(case: Case, first: Pass) -> tuple[datetime, Pass, Pass] | None:
    stamps = sorted(d.updated_at for d in first.docs if d.updated_at is not None)
    if not stamps:
        return None
    since = stamps[len(stamps) // 2]
    return since, case.load(None, since=since), case.load(None, since=since.replace(year=2100))


def _some(ids: Iterable[str]) -> str:
    ids = sorted(set(ids))
    return repr(ids[:SHOWN])[:-1] + (f", ... {len(ids) - SHOWN} more]" if len(ids) > SHOWN else "]")


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
    assert {"name", "type"} <= set(required), f"{cls.__name__}.Config must keep SourceConfig's required name and type"
    for key in required:
        try:
            parse_config({"sources": [{k: v for k, v in raw.items() if k != key}]})
        except ConfigError as exc:
            assert f"key '{key}'" in str(exc) and ("required" in str(exc) or "missing" in str(exc)), exc
        else:
            raise AssertionError(f"a missing key {key!r} must be a ConfigError naming it")


def check_credentials(case: Case) -> None:
    """`check()` runs as the engine runs `load`: an httpx error leaving it is inlet's typed error (a
    401 a `CredentialsError` naming the source)."""
    with http_errors(case.name):
        case.connector().check()
    if case.api:
        assert case.spoilable, "API cases say how to spoil their credentials (bad_raw or bad_env)"
    if not case.spoilable:
        return
    try:
        with http_errors(case.name):
            case.connector(spoiled=True).check()
    except CredentialsError as exc:
        assert exc.source == case.name and repr(case.name) in str(exc), exc
    else:
        raise AssertionError("spoiled credentials must raise CredentialsError naming the source")


def check_full_pass_is_well_formed(runs: Runs) -> None:
    name, type_name = runs.case.name, runs.case.raw["type"]
    docs = runs.first.docs
    assert docs, "a full pass over the sample yields documents"
    assert isinstance(runs.first.items[-1], Checkpoint), "a full pass ends with a Checkpoint"
    for label, run, scratch in runs.passes():
        if scratch:
            assert not run.deletions, (
                f"{label}, from no checkpoint, yields Deletions of {_some(run.deletions)}: there is "
                "nothing to delete yet (an item that cannot be read is a failed Skipped, which keeps what was "
                "indexed; what a full pass does not yield is deleted at its end)"
            )
    for doc in docs:
        assert doc.id.startswith(f"{name}:") and len(doc.id) > len(name) + 1, f"{doc.id!r} is not '{name}:...'"
        assert (doc.source, doc.source_type) == (name, type_name), (
            f"{doc.id}: source {doc.source!r} and source_type {doc.source_type!r}, not {name!r} and {type_name!r}"
        )
        assert doc.text.strip(), f"{doc.id} has no text"
        assert doc.url, f"{doc.id} has no url"
        assert doc.acl.public or doc.acl.users or doc.acl.domains, f"{doc.id} is visible to no user"
        for user in doc.acl.users:
            assert well_formed_user(user, address=True), (
                f"{user!r} in {doc.id}'s ACL users is not an e-mail address: expand groups to their members' addresses"
            )
        for domain in doc.acl.domains:
            assert "@" not in domain, f"{domain!r} in {doc.id}'s ACL domains is an address: put it in users"
        if runs.case.api:
            assert doc.url.startswith(("http://", "https://")), f"{doc.id}: url {doc.url!r} is not http(s)"
        for stamp in (doc.created_at, doc.updated_at):
            assert stamp is None or stamp.utcoffset() == timedelta(0), f"{doc.id}: {stamp!r} is not UTC"
        for key, value in doc.metadata.items():
            flat = isinstance(value, (str, int, float, bool)) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            assert flat, f"{doc.id}: metadata {key!r} is not flat: {value!r}"
    undated = [d.id for d in docs if d.updated_at is None]
    assert not undated, f"every document has updated_at; these do not: {_some(undated)}"


def check_every_id_is_the_sources(runs: Runs) -> None:
    """Every Document, Deletion, Skipped and AclUpdate of every pass names one of the source's own
    documents (`Connector.doc_id`): the engine refuses any other (a connector bug)."""
    prefix = f"{runs.case.name}:"
    for label, run, _ in runs.passes():
        wrong = [
            f"{type(i).__name__}({i.id!r})"
            for i in run.items
            if isinstance(i, (Document, Deletion, Skipped, AclUpdate)) and not i.id.startswith(prefix)
        ]
        assert not wrong, (
            f"{label} yields ids not of source {runs.case.name!r} (each must start with {prefix!r}: "
            f"Connector.doc_id): {wrong[:SHOWN]}"
        )


def check_every_item_is_an_inlet_item(runs: Runs) -> None:
    """Every pass yields only inlet's items (`model.ITEMS`): anything else (a generator where
    `yield from` was meant, a checkpoint method not called, a checkpoint's bare state) fails the
    engine's run as a connector bug, so that a full pass of nothing deletes nothing."""
    for label, run, _ in runs.passes():
        wrong = [(n, what) for n, i in enumerate(run.items) if (what := not_an_item(i)) is not None]
        assert not wrong, (
            f"{label} yields, at item {wrong[0][0]} (and {len(wrong) - 1} more), {wrong[0][1]}; "
            "the engine fails such a run"
        )


def check_ids_are_unique_within_a_pass(runs: Runs) -> None:
    twice = [i for i, n in Counter(d.id for d in runs.first.docs).items() if n > 1]
    assert not twice, f"a full pass yields these documents more than once: {_some(twice)}"


def check_checkpoints_are_json(runs: Runs) -> None:
    for k, n in enumerate(runs.first.checkpoints, 1):
        item = runs.first.items[n]
        assert isinstance(item, Checkpoint)
        why = not_json(item.state)
        assert why is None, (
            f"checkpoint {k} of the first full pass (item {n}) does not survive a JSON round trip, as the engine "
            f"stores it: {why}"
        )


def check_skipped_items_have_ids(runs: Runs) -> None:
    name = runs.case.name
    for item in runs.first.items:
        if isinstance(item, Skipped):
            assert item.id.startswith(f"{name}:"), f"Skipped {item.id!r} is not '{name}:...'"
            assert item.reason, f"Skipped {item.id!r} gives no reason"


def check_unchanged_source_yields_no_changed_content(runs: Runs) -> None:
    first = runs.first.hashes
    inc = runs.incremental  # may yield nothing at all (an unchanged export)
    assert not inc.deletions, f"an incremental pass over an unchanged source yields Deletions of {_some(inc.deletions)}"
    for doc in inc.docs:
        assert doc.id in first, f"{doc.id} appeared from nowhere"
        assert doc.content_hash() == first[doc.id][0], f"{doc.id} changed content without a change"


def check_full_passes_are_deterministic(runs: Runs) -> None:
    first, second = runs.first.hashes, runs.second.hashes
    only_first, only_second = set(first) - set(second), set(second) - set(first)
    assert not only_first, f"two full passes differ: only the first yields {_some(only_first)}"
    assert not only_second, f"two full passes differ: only the second yields {_some(only_second)}"
    differ = [d for d in first if first[d][0] != second[d][0]]
    assert not differ, f"two full passes yield a different title or text for {_some(differ)}"
    differ = [d for d in first if first[d][1] != second[d][1]]
    assert not differ, f"two full passes yield different metadata, times, url or ACL for {_some(differ)}"


def check_resume_loses_nothing(runs: Runs) -> None:
    before = {i.id for i in runs.first.items[: runs.resumed_at] if isinstance(i, Document)}
    after = {d.id for d in runs.resumed.docs}
    full = set(runs.first.hashes)
    where = f"resuming from the checkpoint at item {runs.resumed_at} of a full pass"
    assert full <= before | after, (
        f"{where} loses {_some(full - before - after)}: yielded neither before that checkpoint nor after it"
    )
    assert before | after <= full, f"{where} yields {_some(before | after - full)}, which a full pass does not"
    assert not runs.resumed.deletions, f"{where} yields Deletions of {_some(runs.resumed.deletions)}"
    for doc in runs.resumed.docs:
        assert (doc.content_hash(), doc.meta_hash()) == runs.first.hashes[doc.id], (
            f"{where} re-yields {doc.id} different from the full pass's"
        )


def check_live_ids_match_a_full_pass(runs: Runs) -> bool:
    """False when the connector does not implement `live_ids` (nothing checked)."""
    live = runs.live.get()
    if live is None:
        return False
    docs = set(runs.first.hashes)
    skipped = {i.id for i in runs.first.items if isinstance(i, Skipped)}
    assert docs <= live, f"live_ids() misses {_some(docs - live)}: a prune would delete them"
    assert live <= docs | skipped, f"live_ids() has ids no pass yields: {_some(live - docs - skipped)}"
    return True


def check_since_limits_a_backfill(runs: Runs) -> None:
    found = runs.since.get()
    assert found is not None, "documents carry updated_at, so that `since` can be checked"
    since, recent, future = found
    first = runs.first.docs
    assert recent.docs, f"load(None, since={since.isoformat()}) yields the newer half of the documents: it yields none"
    assert len(recent.docs) < len(first) or min(d.updated_at for d in first if d.updated_at) == since, (
        f"load(None, since={since.isoformat()}) yields every document, older ones too"
    )
    for doc in recent.docs:
        assert doc.updated_at is not None and doc.updated_at >= since, f"{doc.id} is older than since"
    assert not future.docs, f"load(None, since=<the year 2100>) yields {_some(d.id for d in future.docs)}"


def check_an_edit_and_a_deletion_reach_an_incremental_pass(runs: Runs) -> bool:
    """After `Case.mutate`, an incremental pass from the first full pass's final checkpoint yields
    the edited document (its new text) and a `Deletion` of the deleted one, by its document id, and
    no other Deletion. False when the case has no `mutate` (nothing checked)."""
    change, changed = runs.change, runs.changed
    if change is None or changed is None:
        return False
    first = runs.first.hashes
    unknown = [i for i in (change.edited, change.deleted) if i is not None and i not in first]
    assert not unknown, f"Case.mutate names {unknown}, which the first full pass did not yield"
    where = "an incremental pass from the first full pass's final checkpoint"
    if change.edited is not None:
        edited = [d for d in changed.docs if d.id == change.edited]
        assert edited, f"after Case.mutate edited {change.edited!r}, {where} does not yield it"
        assert edited[-1].content_hash() != first[change.edited][0], (
            f"after Case.mutate edited {change.edited!r}, {where} yields it with its old title and text"
        )
    assert change.deleted in changed.deletions, (
        f"after Case.mutate deleted {change.deleted!r}, {where} yields no Deletion of it (its Deletions: "
        f"{_some(changed.deletions)}; a Deletion's id is the document's, Connector.doc_id)"
    )
    others = set(changed.deletions) - {change.deleted}
    assert not others, f"{where} yields Deletions of {_some(others)}, which Case.mutate did not delete"
    return True


def _arrived(items: Iterable[Item], change: Change, old_content: str | None) -> tuple[bool, bool]:
    """Whether `items` hold the edit (the edited document with other content than `old_content`)
    and the deletion `change` names."""
    edited = deleted = False
    for item in items:
        if isinstance(item, Document) and item.id == change.edited and item.content_hash() != old_content:
            edited = True
        elif isinstance(item, Deletion) and item.id == change.deleted:
            deleted = True
    return change.edited is None or edited, deleted


def check_resuming_an_incremental_pass_loses_no_change(runs: Runs) -> bool:
    """After `Case.mutate`, resuming the incremental pass from any of its mid-pass checkpoints still
    delivers the edit and the deletion: yielded before that checkpoint or by the resumed pass. A
    checkpoint that runs ahead of what the pass yielded (a change feed's position saved before the
    changes it covers were yielded) loses them for good when a run fails after it. False when the
    case has no `mutate` or that pass yields no checkpoint before its last (nothing checked)."""
    change, changed = runs.change, runs.changed
    if change is None or changed is None or not runs.changed_resumed:
        return False
    old = runs.first.hashes.get(change.edited or "", ("", ""))[0]
    for n, resumed in runs.changed_resumed:
        edited, deleted = _arrived([*changed.items[:n], *resumed.items], change, old)
        lost = [
            what
            for what, ok in (
                (f"the edit of {change.edited!r}", edited),
                (f"the deletion of {change.deleted!r}", deleted),
            )
            if not ok
        ]
        assert not lost, (
            f"resuming the incremental pass after Case.mutate from its checkpoint at item {n} loses "
            f"{' and '.join(lost)}: yielded neither before that checkpoint nor after it (a checkpoint must not "
            "run ahead of what the pass has yielded: save a change feed's position after the changes it covers)"
        )
    return True


def check_an_incremental_checkpoint_keeps_its_position(runs: Runs) -> bool:
    """After `Case.mutate`, an incremental pass from the final checkpoint of the pass that yielded the
    edit and the deletion yields neither again: that checkpoint keeps the position the pass reached
    (one that stays where the pass started re-reads the same changes on every sync, more each time).
    The edited document may come again only when an incremental pass over the unchanged source
    re-yielded it too (a connector that re-reads everything). False when the case has no `mutate`."""
    change, again = runs.change, runs.again
    if change is None or again is None:
        return False
    where = "an incremental pass from the final checkpoint of the incremental pass after Case.mutate"
    why = "that checkpoint does not keep the position the pass reached, so every sync re-reads the same changes"
    assert change.deleted not in again.deletions, f"{where} yields the Deletion of {change.deleted!r} again: {why}"
    rereads = {d.id for d in runs.incremental.docs}
    if change.edited is not None and change.edited not in rereads:
        assert change.edited not in {d.id for d in again.docs}, (
            f"{where} yields the edited {change.edited!r} again, though an incremental pass over the unchanged "
            f"source did not yield it: {why}"
        )
    return True


def check_resuming_a_full_pass_after_a_deletion_loses_nothing(runs: Runs) -> bool:
    """A full pass resumed from its first mid-pass checkpoint after the item `Case.mutate` deleted
    (a backfill killed past that item, the source edited meanwhile, the backfill resumed) still
    yields every document the full pass yielded after that checkpoint. A checkpoint that is a page
    number or an offset fails: every later item moved up a place, and the one that moved onto the
    position already read is never read. False when the case has no `mutate` or the full pass
    yields no checkpoint after the deleted item and before its last (nothing checked)."""
    change, shifted = runs.change, runs.shifted
    if change is None or shifted is None:
        return False
    after = {i.id for i in runs.first.items[runs.shifted_at + 1 :] if isinstance(i, Document)}
    lost = after - {d.id for d in shifted.docs}
    assert not lost, (
        f"resuming the full pass from its checkpoint at item {runs.shifted_at} after Case.mutate deleted "
        f"{change.deleted!r} loses {_some(lost)}, which still exist(s) and came after that checkpoint: a page number "
        "or an offset is no checkpoint for a listing that can change between runs (resume after the last id or "
        "modification time read, or a cursor the service keeps)"
    )
    return True


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

        def test_every_yielded_id_is_the_sources(self, conformance_runs: Runs) -> None:
            check_every_id_is_the_sources(conformance_runs)

        def test_every_yielded_item_is_an_inlet_item(self, conformance_runs: Runs) -> None:
            check_every_item_is_an_inlet_item(conformance_runs)

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
                check_every_item_is_an_inlet_item(conformance_runs)  # a checkpoint yielded wrong is no sample's
                pytest.skip("the sample pass yields no checkpoint before its last: a crash restarts the pass")
            check_resume_loses_nothing(conformance_runs)

        def test_live_ids_match_a_full_pass(self, conformance_runs: Runs) -> None:
            if not check_live_ids_match_a_full_pass(conformance_runs):
                pytest.skip(f"{conformance_runs.case.raw['type']} does not implement live_ids()")

        def test_since_limits_a_backfill_to_recent_documents(self, conformance_runs: Runs) -> None:
            check_since_limits_a_backfill(conformance_runs)

        def test_an_edit_and_a_deletion_reach_an_incremental_pass(self, conformance_runs: Runs) -> None:
            if not check_an_edit_and_a_deletion_reach_an_incremental_pass(conformance_runs):
                pytest.skip("the case has no mutate: nothing changes the source between passes")

        def test_resuming_an_incremental_pass_loses_no_change(self, conformance_runs: Runs) -> None:
            if not check_resuming_an_incremental_pass_loses_no_change(conformance_runs):
                pytest.skip("no mutate, or the incremental pass after it yields no checkpoint before its last")

        def test_resuming_a_full_pass_after_a_deletion_loses_nothing(self, conformance_runs: Runs) -> None:
            if not check_resuming_a_full_pass_after_a_deletion_loses_nothing(conformance_runs):
                pytest.skip(
                    "no mutate, or the full pass yields no checkpoint after the deleted item and before its last: "
                    "nothing checked (delete one of the first items the pass lists)"
                )

        def test_an_incremental_checkpoint_keeps_its_position(self, conformance_runs: Runs) -> None:
            if not check_an_incremental_checkpoint_keeps_its_position(conformance_runs):
                pytest.skip("the case has no mutate: nothing changes the source between passes")
