"""The SIGKILL crash matrix: each connector's real `inlet backfill` / `inlet sync` process is killed
with SIGKILL at seeded points (start-up, mid-embedding, between the vector write and the catalog
commit, at a checkpoint write, during the prune), the source changes between kills (adds, edits,
deletes through the sandbox's own API, or on disk), then the runs finish; the index must equal a
clean backfill of the final state: the same documents, texts and ACLs, the same chunk count in the
catalog, its full-text table and Chroma, and the same ACLs in Chroma's metadata.

The kill lands exactly where the seed says: `tests/crash_points.py` runs the real command line with
a breakpoint at the chosen point and occurrence, announces it on a pipe and waits; this test sends
SIGKILL. Half the seeds start from an index a backfill filled (so the killed run is a resumed or an
incremental one, or a full pass that prunes). One seed per connector, one kill each, runs in CI;
`INLET_CRASH_SEEDS=50 INLET_CRASH_KILLS=3` runs fifty seeds of three kills, the source changing
after each, and prints the count of kills survived.
"""

from __future__ import annotations

import email.message
import json
import os
import random
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from inlet.connectors.model import Document
from inlet.index.store import Index
from inlet.sandbox import drive_state as ds
from inlet.sandbox import gmail, graph, graph_files, graph_teams
from inlet.sandbox import gmail_state as gs
from inlet.sandbox import slack as sandbox_slack
from inlet.sandbox.server import Sandbox
from inlet.sync.engine import Engine
from inlet.storage.sqlite.state import SqliteState

from inlet.config import Settings, parse_config
from tests.test_sources_e2e import BADEER, narrowed_config, to_toml

SEEDS = int(os.environ.get("INLET_CRASH_SEEDS", "1"))
KILLS = int(os.environ.get("INLET_CRASH_KILLS", "1"))
BREAKPOINTS = Path(__file__).with_name("crash_points.py")
# point -> the highest occurrence worth aiming at in these small sources (a run that never gets
# there just finishes, which is counted, not hidden)
POINTS = {"startup": 1, "embedding": 3, "batch": 3, "checkpoint": 5, "prune": 1}
LAUNCH = "C0CRASH001"
WORDS = [
    "budget",
    "hiring",
    "launch",
    "outage",
    "billing",
    "roadmap",
    "pricing",
    "backup",
    "audit",
    "migration",
    "latency",
    "quota",
    "vendor",
    "contract",
    "security",
    "training",
]


def sentence(rng: random.Random, n: int) -> str:
    return f"Item {n}: " + " ".join(rng.choice(WORDS) for _ in range(12)) + "."


@dataclass
class Subject:
    """One connector under the matrix: its `[[sources]]` block and how its source changes."""

    name: str
    block: dict[str, Any]
    change: Callable[[random.Random], None]
    env: dict[str, str] = field(default_factory=dict)


# --- the six sources -------------------------------------------------------------------------------


def files_subject(root: Path, rng: random.Random) -> Subject:
    folder = root / "notes"
    folder.mkdir()
    for n in range(18):
        (folder / f"note{n:02d}.md").write_text(f"# Note {n}\n\n{sentence(rng, n)}\n")

    def change(rng: random.Random) -> None:
        present = sorted(folder.iterdir())
        present[rng.randrange(len(present))].unlink()
        edited = sorted(folder.iterdir())[rng.randrange(len(present) - 1)]
        edited.write_text(edited.read_text() + f"\nEdited: {sentence(rng, 99)}\n")
        added = rng.randrange(100, 10**6)
        (folder / f"added{added}.md").write_text(f"# Added {added}\n\n{sentence(rng, added)}\n")

    return Subject(
        "crash-files",
        {"type": "files", "path": str(folder), "checkpoint_every": 3, "users": ["hamza@example.com"]},
        change,
    )


def eml(subject: str, body: str, n: int) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ops@example.com", "team@example.com", subject
    msg["Message-ID"] = f"<crash-{n}@example.com>"
    msg["Date"] = f"Mon, {1 + n % 27:02d} Jun 2026 10:00:00 +0000"
    msg.set_content(body)
    return bytes(msg)


def mail_archive_subject(root: Path, rng: random.Random) -> Subject:
    folder = root / "archive"
    folder.mkdir()
    for n in range(18):
        (folder / f"m{n:02d}.eml").write_bytes(eml(f"Report {n}", sentence(rng, n), n))

    def change(rng: random.Random) -> None:
        present = sorted(folder.iterdir())
        present[rng.randrange(len(present))].unlink()
        edited = sorted(folder.iterdir())[rng.randrange(len(present) - 1)]
        edited.write_bytes(eml("Corrected report", sentence(rng, 98), 98))
        added = rng.randrange(100, 10**6)
        (folder / f"a{added}.eml").write_bytes(eml(f"New report {added}", sentence(rng, added), added))

    return Subject(
        "crash-mail-archive",
        {"type": "mail_archive", "path": str(folder), "checkpoint_every": 3, "domains": ["example.com"]},
        change,
    )


def slack_subject(sb: Sandbox, rng: random.Random) -> Subject:
    ws = sb.ws
    members = [
        u.id
        for u in (ws.user_by_email("hamza@example.com"), ws.user_by_email("abilinski@example.com"))
        if u is not None
    ]
    sandbox_slack.add_channel(ws, "crash", [*members, sandbox_slack.BOT_USER], channel_id=LAUNCH)
    for n in range(16):  # recent messages: within the lookback an incremental sync re-reads
        sandbox_slack.post_message(ws, LAUNCH, sentence(rng, n), members[n % len(members)])

    def change(rng: random.Random) -> None:
        top = [m.ts for m in sandbox_slack.state(ws).channels[LAUNCH].messages]
        sandbox_slack.delete_message(ws, LAUNCH, top[rng.randrange(len(top))])
        top = [m.ts for m in sandbox_slack.state(ws).channels[LAUNCH].messages]
        sandbox_slack.edit_message(ws, LAUNCH, top[rng.randrange(len(top))], sentence(rng, 97))
        sandbox_slack.post_message(ws, LAUNCH, sentence(rng, rng.randrange(100, 999)), members[0])

    return Subject("sandbox-slack", {"channels": ["crash"], "page_size": 3}, change)


def drive_subject(sb: Sandbox, rng: random.Random) -> Subject:
    ws = sb.ws

    def change(rng: random.Random) -> None:
        texts = sorted(f.id for f in ds.state(ws).files.values() if f.mime_type == "text/plain" and not f.trashed)
        ds.trash(ws, texts[rng.randrange(len(texts))])
        texts = sorted(f.id for f in ds.state(ws).files.values() if f.mime_type == "text/plain" and not f.trashed)
        ds.edit(ws, texts[rng.randrange(len(texts))], content=sentence(rng, 96))
        ds.add_file(
            ws,
            f"crash note {rng.randrange(10**6)}.txt",
            "text/plain",
            sentence(rng, 95),
            owner="doubledeez@example.com",
            permissions=[ds.user_permission(ws, rng.choice(["hamza@example.com", "abilinski@example.com"]))],
        )

    for n in range(6):  # plain-text files the changes pick from, beside the sample's documents
        ds.add_file(ws, f"crash seed {n}.txt", "text/plain", sentence(rng, n), owner="doubledeez@example.com")
    return Subject("sandbox-drive", {"page_size": 4}, change)


def outlook_subject(sb: Sandbox, rng: random.Random) -> Subject:
    ws = sb.ws
    for n in range(6):
        graph.add_message(ws, BADEER, "inbox", f"Crash report {n}", sentence(rng, n))

    def inbox() -> list[str]:
        box = next(b for b in ws.mail.mailboxes.values() if b.email == BADEER)
        folder = next(f.id for f in box.folders.values() if f.well_known == "inbox")
        return sorted(m.id for m in ws.mail.messages.values() if m.folder_id == folder)

    def change(rng: random.Random) -> None:
        ids = inbox()
        graph.delete_message(ws, ids[rng.randrange(len(ids))])
        ids = inbox()
        graph.edit_message(ws, ids[rng.randrange(len(ids))], subject=f"Corrected {rng.randrange(10**6)}")
        graph.add_message(ws, BADEER, "inbox", f"Late report {rng.randrange(10**6)}", sentence(rng, 94))

    return Subject("sandbox-mail", {"page_size": 2}, change)


def microsoft_files_subject(sb: Sandbox, rng: random.Random) -> Subject:
    ws = sb.ws
    state = graph_files.files_state(ws)
    with ws.lock:
        drive = next(d for d in state.drives.values() if d.kind == "business")
        for n in range(6):
            state.add_item(drive.id, None, f"crash seed {n}.txt", sentence(rng, n).encode(), "text/plain")

    def texts() -> list[str]:
        return sorted(
            i.id for i in state.items.values() if i.drive_id == drive.id and i.mime == "text/plain" and not i.deleted
        )

    def change(rng: random.Random) -> None:
        with ws.lock:
            ids = texts()
            state.delete_item(ids[rng.randrange(len(ids))])
            ids = texts()
            state.edit_item(ids[rng.randrange(len(ids))], data=sentence(rng, 93).encode())
            state.add_item(
                drive.id, None, f"crash note {rng.randrange(10**6)}.txt", sentence(rng, 92).encode(), "text/plain"
            )

    return Subject("sandbox-files", {"page_size": 3, "sites": []}, change)  # the OneDrive only


def teams_subject(sb: Sandbox, rng: random.Random) -> Subject:
    ws = sb.ws
    state = graph_teams.teams_state(ws)
    with ws.lock:
        team = next(t for t in state.teams.values() if t.name == "Support")
        crash = state.add_channel(team.id, "crash")
        for n in range(8):
            state.post(crash.id, team.members[n % len(team.members)], f"<p>{sentence(rng, n)}</p>")

    def change(rng: random.Random) -> None:
        with ws.lock:
            roots = [m.id for m in state.roots(crash.id) if not m.deleted]
            state.delete(roots[rng.randrange(len(roots))])
            roots = [m.id for m in state.roots(crash.id) if not m.deleted]
            state.post(crash.id, team.members[0], f"<p>{sentence(rng, 91)}</p>", roots[rng.randrange(len(roots))])
            state.post(crash.id, team.members[-1], f"<p>{sentence(rng, rng.randrange(100, 999))}</p>")

    return Subject("sandbox-teams", {"page_size": 2, "teams": ["Support"], "channels": ["crash"]}, change)


def gmail_subject(sb: Sandbox, rng: random.Random) -> Subject:
    ws = sb.ws
    for n in range(6):
        gmail.add_message(ws, BADEER, f"Crash report {n}", sentence(rng, n), labels=["Crash"])

    def crash_label() -> list[str]:
        box = gs.mailbox(ws, BADEER)
        label = gs.label_id(ws, BADEER, "Crash")
        return sorted(m.id for m in box.messages.values() if label in m.labels and "TRASH" not in m.labels)

    def change(rng: random.Random) -> None:
        ids = crash_label()
        gmail.delete_message(ws, BADEER, ids[rng.randrange(len(ids))])
        ids = crash_label()
        gmail.trash(ws, BADEER, ids[rng.randrange(len(ids))])
        ids = crash_label()
        gmail.relabel(ws, BADEER, ids[rng.randrange(len(ids))], add=[f"Corrected {rng.randrange(10**6)}"])
        gmail.add_message(ws, BADEER, f"Late report {rng.randrange(10**6)}", sentence(rng, 94), labels=["Crash"])
        gmail.add_message(ws, BADEER, f"Late report {rng.randrange(10**6)}", sentence(rng, 93), labels=["Crash"])

    return Subject("sandbox-gmail", {"labels": ["Crash"], "batch_size": 2, "page_size": 4}, change)


CONNECTORS = ["files", "mail_archive", "slack", "google_drive", "outlook", "microsoft_files", "teams", "gmail"]


def make_subject(kind: str, sb: Sandbox, root: Path, rng: random.Random) -> Subject:
    if kind == "files":
        return files_subject(root, rng)
    if kind == "mail_archive":
        return mail_archive_subject(root, rng)
    return {
        "slack": slack_subject,
        "google_drive": drive_subject,
        "outlook": outlook_subject,
        "microsoft_files": microsoft_files_subject,
        "teams": teams_subject,
        "gmail": gmail_subject,
    }[kind](sb, rng)


# --- running, killing, comparing ---------------------------------------------------------------------


def write_config(sb: Sandbox, subject: Subject, index: Path, config: Path) -> tuple[Settings, dict[str, str]]:
    """A config holding only `subject`'s source (sandbox sources narrowed as in the e2e tests)."""
    raw, env = narrowed_config(sb, index, m365=True)
    sandbox_blocks = {s["name"]: s for s in raw["sources"]}
    if subject.name in sandbox_blocks:
        source = {**sandbox_blocks[subject.name], **subject.block}
    else:
        source = {"name": subject.name, **subject.block}
    raw["sources"] = [source]
    config.write_text(to_toml(raw))
    return parse_config(raw), env


@dataclass
class Tally:
    kills: int = 0
    finished: int = 0
    points: dict[str, int] = field(default_factory=dict)


def killed_at(point: str, k: int, argv: list[str], env: dict[str, str], cwd: Path) -> bool:
    """Run `inlet ARGV` with a breakpoint at the k-th `point`; SIGKILL it there. False: the run
    finished before reaching it (it must then have succeeded)."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, str(BREAKPOINTS), point, str(k), str(write_end), "--", *argv],
        cwd=cwd,
        env=env,
        pass_fds=(write_end,),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    try:
        waiting = select.poll()  # not select(): the test process may hold more than 1024 descriptors
        waiting.register(read_end, select.POLLIN)
        ready = waiting.poll(600_000)
        announced = os.read(read_end, 100).decode() if ready else ""
    finally:
        os.close(read_end)
    if announced:
        assert announced.split() == [point, str(k)]
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        return True
    if not ready:
        proc.kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"{argv} without a kill: exit {proc.returncode}\n{err[-3000:]}"
    return False


def run_here(settings: Settings, env: dict[str, str], embedder: Any, name: str, kind: str) -> list[str]:
    """Runs in this process (the shared model): until the source is incremental and a sync finds
    nothing more to do, for `kind` "finish"; one backfill for "backfill". Returns the outcomes."""
    outcomes: list[str] = []
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(Path(settings.index.path) / "state.db")
        try:
            engine = Engine(settings, index, state, env=env)
            for _ in range(1 if kind == "backfill" else 4):
                result = engine.run(name, "backfill" if kind == "backfill" else "sync")
                outcomes.append(result.outcome)
                assert result.outcome == "ok", result
                if state.source(name).phase == "incremental" and result.upserted == result.deleted == 0:
                    break
        finally:
            state.close()
    return outcomes


def snapshot(settings: Settings, embedder: Any) -> dict[str, Any]:
    """What the index holds, in a form two indexes can be compared by."""
    with Index(settings.index, embedder=embedder) as index:
        query = index.catalog._query
        docs = query("SELECT doc_id, content_hash, meta_hash, chunks FROM documents ORDER BY doc_id")
        chunks = query("SELECT chunk_id, text FROM chunks ORDER BY chunk_id")
        fts = query("SELECT count(*) FROM chunks_fts")[0][0]
        acl = query("SELECT doc_id, principal FROM acl ORDER BY doc_id, principal")
        vectors = index.collection.get(include=["metadatas"])
        chroma = sorted(zip(vectors["ids"], (json.dumps(m, sort_keys=True) for m in vectors["metadatas"] or [])))
    assert sum(d[3] for d in docs) == len(chunks) == fts == len(chroma), "catalog, full text and Chroma disagree"
    assert [c[0] for c in chunks] == [c[0] for c in chroma]
    return {"documents": docs, "chunks": chunks, "acl": acl, "chroma": chroma}


def clean_backfill(sb: Sandbox, subject: Subject, root: Path, embedder: Any) -> dict[str, Any]:
    settings, env = write_config(sb, subject, root / "clean-index", root / "clean.toml")
    run_here(settings, env, embedder, subject.name, "backfill")
    live = [i for i in settings.connector(subject.name, env).load(None) if isinstance(i, Document)]
    clean = snapshot(settings, embedder)
    assert len(clean["documents"]) == len(live) > 0
    return clean


def plan(kind: str, seed: int, rng: random.Random) -> list[tuple[str, int, str]]:
    """(point, occurrence, command) of each kill. The first kill's point turns with the connector
    and the seed, so one seed over the connectors visits every point."""
    names = list(POINTS)
    kills = []
    for round_ in range(KILLS):
        point = names[(CONNECTORS.index(kind) + seed) % len(names)] if round_ == 0 else rng.choice(names)
        command = "backfill" if point == "prune" else rng.choice(["sync", "backfill"])
        kills.append((point, rng.randint(1, POINTS[point]), command))
    return kills


def crash_and_compare(kind: str, seed: int, root: Path, embedder: Any, tally: Tally) -> None:
    rng = random.Random(f"{seed}:{kind}")
    kills = plan(kind, seed, rng)
    with Sandbox() as sb:
        subject = make_subject(kind, sb, root, rng)
        config = root / "config.toml"
        settings, env = write_config(sb, subject, root / "index", config)
        child_env = {**os.environ, **env, "INLET_CONFIG": str(config)}
        if kills[0][0] == "prune" or rng.random() < 0.5:  # a prune needs an index to prune
            run_here(settings, env, embedder, subject.name, "backfill")
            subject.change(rng)
        for point, k, command in kills:
            if killed_at(point, k, [command, subject.name], child_env, root):
                tally.kills += 1
                tally.points[point] = tally.points.get(point, 0) + 1
            else:
                tally.finished += 1
            subject.change(rng)
        run_here(settings, env, embedder, subject.name, "finish")
        got = snapshot(settings, embedder)
        expected = clean_backfill(sb, subject, root, embedder)
    for part in expected:
        assert got[part] == expected[part], f"{kind}, seed {seed}: {part} differ from a clean backfill"


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    total = Tally()
    yield total
    print(
        f"\ncrash matrix: {total.kills} SIGKILLs survived ({total.points}), "
        f"{total.finished} runs finished before their kill point"
    )


@pytest.mark.timeout(300 + 300 * KILLS)  # each kill starts a process that loads the model
@pytest.mark.parametrize("seed", range(SEEDS))
@pytest.mark.parametrize("kind", CONNECTORS)
def test_sigkill_at_seeded_points_ends_like_a_clean_backfill(
    kind: str, seed: int, tmp_path: Path, embedder: Any, tally: Tally
) -> None:
    kills = tally.kills
    crash_and_compare(kind, seed, tmp_path, embedder, tally)
    print(f" {kind} seed {seed}: {tally.kills - kills} kills survived (so far {tally.kills}: {tally.points})")
