"""The conformance suite: the same contract checks against every registered connector type.

Each type in the `inlet.connectors` entry-point group gets a case below that configures it the way a
user would (a `[[sources]]` table through `parse_config`): the API connectors against one shared
sandbox (these tests only read it), the file-based ones against a temp folder or the packaged sample
data. A registered type without a case fails loudly, so a new connector cannot skip the suite.

Each case is loaded once per module (two full passes, one incremental pass from the final
checkpoint, one resume from a mid-pass checkpoint) and the tests assert on those passes.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from inlet.connectors import registry
from inlet.connectors.base import Connector
from inlet.connectors.model import Checkpoint, Deletion, Document, Item, Skipped
from inlet.sandbox import drive, gmail, graph
from inlet.sandbox import slack as sandbox_slack
from inlet.sandbox.documents import make_docx, make_pdf
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import DATA_DIR

from inlet.config import parse_config
from inlet.errors import ConfigError, CredentialsError

TYPES = sorted(registry.available())
API_TYPES = {"slack", "google_drive", "outlook", "gmail"}


@dataclass
class Case:
    """One configured source: its `[[sources]]` table, its secrets, and how to spoil its credentials."""

    raw: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    bad_raw: dict[str, Any] | None = None      # API types: config overrides the service refuses ...
    bad_env: dict[str, str] | None = None      # ... or secrets it refuses

    def connector(self, spoiled: bool = False) -> Connector:
        raw = self.raw | (self.bad_raw or {}) if spoiled else self.raw
        env = self.bad_env or self.env if spoiled else self.env
        return parse_config({"sources": [raw]}).connector(raw["name"], env)

    @property
    def spoilable(self) -> bool:
        return self.bad_raw is not None or self.bad_env is not None


# --- the cases, one per connector type ------------------------------------------------------------

def _files(root: Path, sb: Sandbox) -> Case:
    folder = root / "files"
    (folder / "guide").mkdir(parents=True)
    (folder / "guide" / "setup.md").write_text("# Setup guide\n\nInstall with pip and run the wizard.\n")
    (folder / "notes.txt").write_text("Plain notes about the Osprey project and its budget.")
    (folder / "page.html").write_text("<html><body><h1>Welcome</h1><p>Hello <b>team</b></p></body></html>")
    (folder / "report.pdf").write_bytes(make_pdf("Quarterly report", ["Revenue grew in the Pelican region."]))
    (folder / "plan.docx").write_bytes(make_docx("Quarterly plan", ["The Zanzibar initiative ships."]))
    (folder / "empty.txt").write_text("   \n")        # a policy skip: no text
    return Case({"name": "conf-files", "type": "files", "path": str(folder), "checkpoint_every": 2})


def _slack_export(root: Path, sb: Sandbox) -> Case:
    return Case({"name": "conf-export", "type": "slack_export",
                 "path": str(DATA_DIR / "slack-export-sample.zip"), "domains": ["example.com"]})


def _mail_archive(root: Path, sb: Sandbox) -> Case:
    with tarfile.open(DATA_DIR / "enron-mini.tar.gz") as tar:
        members = [m for m in tar.getmembers() if "/badeer-r/" in m.name]
        tar.extractall(root / "enron", members=members, filter="data")
    return Case({"name": "conf-mail", "type": "mail_archive", "path": str(root / "enron" / "enron-mini"),
                 "users": ["auditor@example.com"], "checkpoint_every": 25})


def _slack(root: Path, sb: Sandbox) -> Case:
    block, env = sandbox_slack.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-slack", "pace_scale": 1e6, "retry_backoff": 0.01, "page_size": 20}
    return Case(raw, env, bad_env={k: "xoxb-not-a-real-token" for k in env})


def _google_drive(root: Path, sb: Sandbox) -> Case:
    block, env = drive.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-drive", "backoff_seconds": 0.01, "max_requests_per_second": 0,
                           "page_size": 5}
    return Case(raw, env, bad_raw={"subject": "nobody@unknown.invalid"})   # delegation refused


def _outlook(root: Path, sb: Sandbox) -> Case:
    block, env = graph.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-outlook", "mailboxes": ["robert.badeer@enron.com"]}
    return Case(raw, env, bad_env={k: "wrong-secret" for k in env})


def _gmail(root: Path, sb: Sandbox) -> Case:
    block, env = gmail.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-gmail", "mailboxes": ["robert.badeer@enron.com"], "batch_size": 20,
                           "page_size": 40, "backoff_seconds": 0.01}
    return Case(raw, env, bad_raw={"credentials_file": str(foreign_key(root / "foreign-key.json", raw))})


def foreign_key(path: Path, raw: dict[str, Any]) -> Path:
    """The source's service-account file with a private key the token endpoint never issued."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    info = json.loads(Path(raw["credentials_file"]).read_text())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps(info))
    return path


CASES: dict[str, Callable[[Path, Sandbox], Case]] = {
    "files": _files, "slack_export": _slack_export, "mail_archive": _mail_archive,
    "slack": _slack, "google_drive": _google_drive, "outlook": _outlook, "gmail": _gmail,
}


def _table(block: str) -> dict[str, Any]:
    import tomllib

    return dict(tomllib.loads(block)["sources"][0])


# --- passes -------------------------------------------------------------------------------------

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
        return json.loads(json.dumps(last.state))    # as the engine stores and reloads it


@dataclass
class Runs:
    case: Case
    first: Pass
    second: Pass
    incremental: Pass
    resumed_at: int            # index in `first` of the checkpoint the resume started from
    resumed: Pass


@pytest.fixture(scope="module")
def sandbox_module() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module", params=TYPES)
def runs(request: pytest.FixtureRequest, sandbox_module: Sandbox,
         tmp_path_factory: pytest.TempPathFactory) -> Runs:
    type_name = request.param
    if type_name not in CASES:
        pytest.fail(f"connector type {type_name!r} is registered in {registry.GROUP} but has no "
                    f"conformance case: add one to CASES in {__file__}")
    case = CASES[type_name](tmp_path_factory.mktemp(type_name), sandbox_module)
    first = Pass(list(case.connector().load(None)))
    second = Pass(list(case.connector().load(None)))
    incremental = Pass(list(case.connector().load(first.final_state())))
    marks = first.checkpoints[:-1] or first.checkpoints
    at = marks[len(marks) // 2]
    state = json.loads(json.dumps(first.items[at].state))   # type: ignore[union-attr]
    resumed = Pass(list(case.connector().load(state)))
    return Runs(case, first, second, incremental, at, resumed)


# --- the checks ---------------------------------------------------------------------------------

def test_every_registered_type_has_a_case() -> None:
    assert {"files", "slack", "slack_export", "google_drive", "outlook", "mail_archive", "gmail"} <= set(TYPES)
    missing = sorted(set(TYPES) - set(CASES))
    assert not missing, f"registered connector types without a conformance case: {missing}"


def test_config_forbids_unknown_keys_and_names_missing_ones(runs: Runs) -> None:
    raw = runs.case.raw
    with pytest.raises(ConfigError, match=r"key 'no_such_key': unknown key") as caught:
        parse_config({"sources": [raw | {"no_such_key": 1}]})
    assert raw["name"] in str(caught.value)
    cls = registry.connector_class(raw["type"])
    required = [name for name, f in cls.Config.model_fields.items() if f.is_required()]
    assert {"name", "type"} <= set(required)
    for key in required:
        with pytest.raises(ConfigError, match=f"key '{key}'.*(required|missing)"):
            parse_config({"sources": [{k: v for k, v in raw.items() if k != key}]})


def test_check_passes_with_good_credentials_and_names_the_source_with_bad(runs: Runs) -> None:
    runs.case.connector().check()
    if runs.case.raw["type"] in API_TYPES:
        assert runs.case.spoilable, "API cases say how to spoil their credentials"
        with pytest.raises(CredentialsError) as caught:
            runs.case.connector(spoiled=True).check()
        assert caught.value.source == runs.case.raw["name"]
        assert repr(runs.case.raw["name"]) in str(caught.value)


def test_a_full_pass_yields_well_formed_documents(runs: Runs) -> None:
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
        if type_name in API_TYPES:
            assert doc.url.startswith(("http://", "https://")), doc.url
        for stamp in (doc.created_at, doc.updated_at):
            assert stamp is None or stamp.utcoffset() == timedelta(0), f"{doc.id}: {stamp!r} is not UTC"
        for key, value in doc.metadata.items():
            flat = isinstance(value, (str, int, float, bool)) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value))
            assert flat, f"{doc.id}: metadata {key!r} is not flat: {value!r}"
    assert sum(d.updated_at is not None for d in docs) == len(docs), "every document has updated_at"


def test_ids_are_unique_within_a_pass(runs: Runs) -> None:
    ids = [d.id for d in runs.first.docs]
    assert len(ids) == len(set(ids))


def test_checkpoints_are_json(runs: Runs) -> None:
    for n in runs.first.checkpoints:
        state = runs.first.items[n].state   # type: ignore[union-attr]
        assert json.loads(json.dumps(state)) == state, "a checkpoint must survive a JSON round trip"


def test_skipped_items_have_ids(runs: Runs) -> None:
    name = runs.case.raw["name"]
    for item in runs.first.items:
        if isinstance(item, Skipped):
            assert item.id.startswith(f"{name}:") and item.reason, item


def test_an_unchanged_source_yields_no_changed_content(runs: Runs) -> None:
    first = runs.first.hashes
    inc = runs.incremental          # may yield nothing at all (slack_export: the ZIP is unchanged)
    assert [i for i in inc.items if isinstance(i, Deletion)] == []
    for doc in inc.docs:
        assert doc.id in first, f"{doc.id} appeared from nowhere"
        assert doc.content_hash() == first[doc.id][0], f"{doc.id} changed content without a change"


def test_full_passes_are_deterministic(runs: Runs) -> None:
    assert runs.second.hashes == runs.first.hashes


def test_resuming_from_a_mid_pass_checkpoint_loses_nothing(runs: Runs) -> None:
    before = {i.id for i in runs.first.items[:runs.resumed_at] if isinstance(i, Document)}
    after = {d.id for d in runs.resumed.docs}
    assert before | after == set(runs.first.hashes)
    assert [i for i in runs.resumed.items if isinstance(i, Deletion)] == []
    for doc in runs.resumed.docs:
        assert (doc.content_hash(), doc.meta_hash()) == runs.first.hashes[doc.id], "re-yielded docs are identical"


def test_live_ids_match_a_full_pass(runs: Runs) -> None:
    try:
        live = set(runs.case.connector().live_ids())
    except NotImplementedError:
        pytest.skip(f"{runs.case.raw['type']} does not implement live_ids()")
    docs = set(runs.first.hashes)
    skipped = {i.id for i in runs.first.items if isinstance(i, Skipped)}
    assert docs <= live, f"live_ids() misses {sorted(docs - live)[:5]}: a prune would delete them"
    assert live <= docs | skipped, f"live_ids() has ids no pass yields: {sorted(live - docs - skipped)[:5]}"


def test_since_limits_a_backfill_to_recent_documents(runs: Runs) -> None:
    stamps = sorted(d.updated_at for d in runs.first.docs if d.updated_at is not None)
    since = stamps[len(stamps) // 2]
    recent = Pass(list(runs.case.connector().load(None, since=since))).docs
    assert recent, "the newer half of the documents is yielded"
    assert len(recent) < len(runs.first.docs) or stamps[0] == since
    for doc in recent:
        assert doc.updated_at is not None and doc.updated_at >= since, f"{doc.id} is older than since"
    future = since.replace(year=2100)
    assert Pass(list(runs.case.connector().load(None, since=future))).docs == []
