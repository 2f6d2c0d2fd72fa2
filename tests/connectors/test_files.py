import logging
import os
import pickle
import random
import re
import shutil
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from inlet.connectors.extract import extract_text
from inlet.connectors.files import FilesConnector
from inlet.connectors.model import Checkpoint, Deletion, Document, Skipped
from inlet.errors import ConfigError, IncompleteListingError, NothingInScopeError, NotTextError
from inlet.sandbox.documents import make_docx, make_pdf, make_pptx, make_xlsx


def connector(root: Path, **extra) -> FilesConnector:
    config = FilesConnector.Config(name="docs", type="files", path=root, **extra)
    return FilesConnector(config)


def run(conn: FilesConnector, checkpoint=None):
    items = list(conn.load(checkpoint))
    assert isinstance(items[-1], Checkpoint)
    return items, items[-1].state


def by_type(items, cls):
    return [i for i in items if isinstance(i, cls)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "setup.md").write_text("# Setup guide\n\nInstall with pip.\n")
    (tmp_path / "notes.txt").write_text("Plain notes about the Osprey project.")
    (tmp_path / "page.html").write_text("<html><body><h1>Welcome</h1><p>Hello <b>team</b></p></body></html>")
    (tmp_path / "report.pdf").write_bytes(make_pdf("Revenue grew in the Pelican region", []))
    (tmp_path / "plan.docx").write_bytes(make_docx("Quarterly plan", ["The Zanzibar initiative ships."]))
    return tmp_path


def test_reads_every_supported_format(root):
    items, _ = run(connector(root))
    docs = {d.id: d for d in by_type(items, Document)}
    assert set(docs) == {"docs:guide/setup.md", "docs:notes.txt", "docs:page.html", "docs:report.pdf", "docs:plan.docx"}
    assert docs["docs:guide/setup.md"].title == "Setup guide"
    assert "Pelican region" in docs["docs:report.pdf"].text
    assert "Zanzibar initiative" in docs["docs:plan.docx"].text and "# Quarterly plan" in docs["docs:plan.docx"].text
    assert "Hello team" in docs["docs:page.html"].text and "<p>" not in docs["docs:page.html"].text  # no emphasis marks
    assert docs["docs:notes.txt"].acl.public and docs["docs:notes.txt"].url.startswith("file://")
    assert docs["docs:guide/setup.md"].metadata["folder"] == "guide"


def test_incremental_yields_only_changes_and_deletions(root):
    conn = connector(root)
    _, state = run(conn)
    items, state2 = run(conn, state)
    assert by_type(items, Document) == [] and by_type(items, Deletion) == []

    (root / "notes.txt").write_text("Rewritten notes.")
    os.utime(root / "notes.txt", ns=(1, 10**18))
    (root / "page.html").unlink()
    (root / "new.md").write_text("# New\n\nfresh")
    same = root / "guide" / "setup.md"
    os.utime(same, ns=(1, 2 * 10**18))  # touched, bytes unchanged: read, hashed, not re-yielded
    items, _ = run(conn, state2)
    assert sorted(d.id for d in by_type(items, Document)) == ["docs:new.md", "docs:notes.txt"]
    assert [d.id for d in by_type(items, Deletion)] == ["docs:page.html"]


def test_corrupt_pdf_is_skipped_and_the_rest_goes_on(root):
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    items, _ = run(connector(root))
    skipped = by_type(items, Skipped)
    assert [s.id for s in skipped] == ["docs:broken.pdf"] and skipped[0].failed
    assert len(by_type(items, Document)) == 5


def test_a_damaged_file_is_read_and_reported_every_run_until_it_reads(root):
    """A failed extraction keeps the document indexed before; the next run reads the file again
    (and lists it) rather than taking it for read, also when it was never indexed."""
    conn = connector(root)
    _, state = run(conn)
    plan = root / "plan.docx"
    plan.write_bytes(plan.read_bytes()[:2000])  # damaged: a cut zip
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4 never a pdf")
    for _ in range(2):  # nothing changes on disk between the two runs
        items, state = run(conn, state)
        skipped = {s.id: s for s in by_type(items, Skipped)}
        assert set(skipped) == {"docs:plan.docx", "docs:corrupt.pdf"} and all(s.failed for s in skipped.values())
        assert not by_type(items, Document) and not by_type(items, Deletion)
    assert skipped["docs:plan.docx"].acl == conn.config.acl()  # the kept version takes the ACL configured now
    plan.write_bytes(make_docx("Quarterly plan", ["The Zanzibar initiative slips a week."]))
    items, state = run(conn, state)
    assert [d.id for d in by_type(items, Document)] == ["docs:plan.docx"]
    assert [s.id for s in by_type(items, Skipped)] == ["docs:corrupt.pdf"]
    items, _ = run(conn, state)
    assert not by_type(items, Document) and [s.id for s in by_type(items, Skipped)] == ["docs:corrupt.pdf"]


def test_damaged_files_an_earlier_release_took_for_read_are_found_again(root):
    """A checkpoint from before failed extractions were marked gave a damaged file the entry of a
    file read (its stat and hash): the first run with it extracts each PDF/DOCX once more, so the
    damaged ones are listed again, and every run after that, until they read."""
    import hashlib

    conn = connector(root)
    plan = root / "plan.docx"
    plan.write_bytes(plan.read_bytes()[:2000])  # damaged: a cut zip
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4 never a pdf")
    _, state = run(conn)
    earlier = {key: value for key, value in state.items() if key != "failed_marked"}
    for name in ("plan.docx", "corrupt.pdf"):  # as the earlier release wrote them
        stat = (root / name).stat()
        digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
        earlier["files"] = {**earlier["files"], name: [stat.st_mtime_ns, stat.st_size, digest]}
    for _ in range(2):  # nothing changes on disk between the two runs
        items, earlier = run(conn, earlier)
        skipped = {s.id for s in by_type(items, Skipped) if s.failed}
        assert skipped == {"docs:plan.docx", "docs:corrupt.pdf"} and not by_type(items, Deletion)
    assert not by_type(items, Document)  # the second run extracts the damaged files alone


def test_a_file_damaged_then_restored_as_it_was_is_read_again(root):
    conn = connector(root)
    _, state = run(conn)
    plan = root / "plan.docx"
    good = plan.read_bytes()
    plan.write_bytes(good[:2000])
    _, state = run(conn, state)
    plan.write_bytes(good)  # the copy from before: the index holds its text already
    items, state = run(conn, state)
    assert not by_type(items, Skipped) and not by_type(items, Document)
    items, _ = run(conn, state)
    assert not by_type(items, Skipped) and not by_type(items, Document)


def test_symlinks_out_of_the_root_are_refused(root, tmp_path_factory, caplog):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("top secret")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    items, _ = run(connector(root))
    texts = " ".join(d.text for d in by_type(items, Document))
    assert "top secret" not in texts and len(by_type(items, Document)) == 5
    assert "outside" in caplog.text


def test_a_file_links_inside_the_root_point_at_is_one_document(root, caplog):
    (root / "inside.txt").symlink_to(root / "notes.txt")  # the target is listed: indexed under its own path
    (root / "guide" / "again.md").symlink_to("setup.md")
    (root / ".drafts").mkdir()  # not walked: indexed under the first link the walk meets
    (root / ".drafts" / "memo.md").write_text("# Memo\n\nThe Heron launch moved to May.")
    (root / "b.md").symlink_to(root / ".drafts" / "memo.md")
    (root / "a.md").symlink_to(Path(".drafts") / "memo.md")
    conn = connector(root)
    with caplog.at_level(logging.INFO, logger="inlet.connectors.files"):
        items, state = run(conn)
    docs = sorted(d.id for d in by_type(items, Document))
    assert docs == [
        f"docs:{n}" for n in ("a.md", "guide/setup.md", "notes.txt", "page.html", "plan.docx", "report.pdf")
    ]
    assert sorted(conn.live_ids()) == docs
    assert "b.md is a link to the file indexed as a.md; not indexed twice" in caplog.text
    before = {**state["files"], "inside.txt": state["files"]["notes.txt"]}  # a link was a document of its own
    items, _ = run(conn, {**state, "files": before})
    assert [d.id for d in by_type(items, Deletion)] == ["docs:inside.txt"]


def test_hard_links_of_one_file_are_one_document(root, caplog):
    """A snapshot or backup tree (`cp -al`, rsnapshot) is made of hard links: one file, one
    document, under its first path in the walk (probe33f F8)."""
    (root / "team").mkdir()
    os.link(root / "notes.txt", root / "team" / "notes.txt")
    (root / "team" / "symlink.txt").symlink_to(root / "team" / "notes.txt")
    conn = connector(root)
    with caplog.at_level(logging.INFO, logger="inlet.connectors.files"):
        items, state = run(conn)
    docs = sorted(d.id for d in by_type(items, Document))
    assert "docs:notes.txt" in docs and not [d for d in docs if d.startswith("docs:team/")]
    assert "team/notes.txt is a link to the file indexed as notes.txt; not indexed twice" in caplog.text
    before = {**state["files"], "team/notes.txt": state["files"]["notes.txt"]}  # a document of its own before
    items, _ = run(conn, {**state, "files": before})
    assert [d.id for d in by_type(items, Deletion)] == ["docs:team/notes.txt"]


def test_a_link_never_brings_back_a_file_exclude_leaves_out(root, caplog):
    (root / "private").mkdir()
    (root / "private" / "salaries.md").write_text("# Salaries\n\nConfidential figures.")
    (root / "guide" / "pay.md").symlink_to(root / "private" / "salaries.md")
    with caplog.at_level(logging.INFO, logger="inlet.connectors.files"):
        items, _ = run(connector(root, exclude=["private/**"]))
    assert not [d for d in by_type(items, Document) if "Confidential" in d.text]
    assert "guide/pay.md is a link to private/salaries.md, which exclude leaves out" in caplog.text


def test_a_link_retargeted_after_the_walk_reads_nothing_outside_or_excluded(root, tmp_path_factory, caplog):
    """The walk checked where the link pointed; the read checks the file it opened (a link swapped
    in between once indexed a file outside the folder, with the folder's ACL)."""
    outside = tmp_path_factory.mktemp("elsewhere") / "outside.md"
    outside.write_text("# Secret\n\nNot for this folder.")
    (root / "private").mkdir()
    (root / "private" / "pay.md").write_text("# Pay\n\nExcluded.")
    link = root / "zz.md"
    link.symlink_to(root / "notes.txt")
    conn = connector(root, exclude=["private/**"])
    assert conn._read("zz.md", link) == (root / "notes.txt").read_bytes()
    for target in (outside, root / "private" / "pay.md"):
        link.unlink()
        link.symlink_to(target)
        with caplog.at_level(logging.INFO, logger="inlet.connectors.files"):
            assert conn._read("zz.md", link) is None
    assert "zz.md now points outside" in caplog.text and "which exclude leaves out" in caplog.text


@pytest.mark.timeout(60)  # the read of a pipe once waited for a writer for ever
def test_a_name_swapped_for_a_pipe_after_the_walk_reads_nothing_at_once(root, caplog):
    """A pipe without a writer (`mkfifo x; mv x notes.txt` by anyone who may write to the folder),
    as the name itself or as a link's new target: the read neither waits nor reads it."""
    os.mkfifo(root / ".swap")
    os.replace(root / ".swap", root / "notes.txt")
    link = root / "zz.md"
    link.symlink_to(root / "notes.txt")
    conn = connector(root)
    with caplog.at_level(logging.INFO, logger="inlet.connectors.files"):
        assert conn._read("notes.txt", root / "notes.txt") is None and conn._read("zz.md", link) is None
    assert "notes.txt is no longer a regular file; not indexed" in caplog.text
    assert "zz.md is no longer a regular file" in caplog.text
    assert conn._read("guide/setup.md", root / "guide" / "setup.md") == (root / "guide" / "setup.md").read_bytes()


def test_include_exclude_and_size_cap(root):
    items, _ = run(connector(root, include=["**/*.md", "*.txt"], exclude=["notes*"]))
    assert [d.id for d in by_type(items, Document)] == ["docs:guide/setup.md"]
    items, _ = run(connector(root, max_file_bytes=40))
    assert {s.id for s in by_type(items, Skipped) if not s.failed} >= {"docs:report.pdf", "docs:plan.docx"}


def test_a_docx_that_unpacks_to_far_more_than_its_size_is_skipped_by_policy(root):
    """A file under max_file_bytes whose parts unpack past the limit is not read (probe27d F9):
    listed with its unpacked size, the run stays ok, and its old text leaves the index."""
    import io
    import zipfile

    conn = connector(root)
    _, state = run(conn)
    out = io.BytesIO()
    plan = zipfile.ZipFile(io.BytesIO(make_docx("Quarterly plan", ["The launch date is March 3."])))
    with plan, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        for part in plan.namelist():
            with package.open(part, "w", force_zip64=True) as to:
                to.write(plan.read(part))
                for _ in range(26 if part == "word/document.xml" else 0):
                    to.write(b" " * 4_000_000)  # 104 MB of blanks after the body: about 450 KB packed
    (root / "plan.docx").write_bytes(out.getvalue())
    os.utime(root / "plan.docx", ns=(1, 10**18))
    items, _ = run(conn, state)
    [skip] = by_type(items, Skipped)
    assert skip.id == "docs:plan.docx" and not skip.failed
    assert re.search(
        r"unpacks to 104\.\d MB, over the limit of 100\.\d MB \(its own 0\.\d MB plus 100\.0 MB\)", skip.reason
    )
    assert [d.id for d in by_type(items, Deletion)] == ["docs:plan.docx"]


def test_checkpoints_during_a_long_pass_allow_resuming(root):
    conn = connector(root, checkpoint_every=2)
    items = list(conn.load(None))
    checkpoints = [i for i in items if isinstance(i, Checkpoint)]
    assert len(checkpoints) >= 3
    first = checkpoints[0]
    before = items[: items.index(first)]
    resumed = list(conn.load(first.state))
    seen = {d.id for d in by_type(before + resumed, Document)}
    assert seen == {d.id for d in by_type(items, Document)}
    assert not (set(d.id for d in by_type(before, Document)) & set(d.id for d in by_type(resumed, Document)))


def test_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'path'"):
        list(connector(tmp_path / "nope").load(None))


def test_live_ids_lists_current_files(root):
    assert "docs:report.pdf" in set(connector(root).live_ids())


def test_titles_are_the_documents_own_else_the_relative_path(tmp_path):
    import io

    import docx
    from pypdf import PdfReader, PdfWriter

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "copyright").write_text("Copyright 2001 the A authors.")
    (tmp_path / "b" / "copyright").write_text("Copyright 2002 the B authors.")
    (tmp_path / "titled.html").write_text(
        "<html><head><title>Travel &amp; expenses</title></head>"
        "<body><h1>Other</h1><p>Claim within 30 days.</p></body></html>"
    )
    (tmp_path / "headed.html").write_text("<html><body><h1>On-call rota</h1><p>Weekly.</p></body></html>")
    pdf = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("Revenue grew in the Pelican region", []))))
    pdf.add_metadata({"/Title": "Pelican revenue report"})
    buffer = io.BytesIO()
    pdf.write(buffer)
    (tmp_path / "report.pdf").write_bytes(buffer.getvalue())
    document = docx.Document(io.BytesIO(make_docx("Quarterly plan", ["The Zanzibar initiative ships."])))
    document.core_properties.title = "Zanzibar plan 2025"
    buffer = io.BytesIO()
    document.save(buffer)
    (tmp_path / "plan.docx").write_bytes(buffer.getvalue())
    (tmp_path / "notes.md").write_text("Intro line\n\n## Meeting notes\n\nDecisions.")
    # A deck's and a workbook's headings are inlet's section markers ("Slide 1", a sheet's name).
    (tmp_path / "deck.pptx").write_bytes(make_pptx("Roadmap", [("Q3", "Ship the search rewrite.")]))
    from pptx import Presentation

    deck = Presentation(io.BytesIO(make_pptx("Kickoff", [("Goals", "Ship the Osprey launch.")])))
    deck.core_properties.title = "Osprey kickoff"
    buffer = io.BytesIO()
    deck.save(buffer)
    (tmp_path / "titled.pptx").write_bytes(buffer.getvalue())
    (tmp_path / "book.xlsx").write_bytes(make_xlsx("", {"Sheet1": [["Region", "Revenue"], ["North", 12]]}))

    items, _ = run(connector(tmp_path))
    titles = {d.id.removeprefix("docs:"): d.title for d in by_type(items, Document)}
    assert titles == {
        "a/copyright": "a/copyright",
        "b/copyright": "b/copyright",
        "titled.html": "Travel & expenses",
        "headed.html": "On-call rota",
        "report.pdf": "Pelican revenue report",
        "plan.docx": "Zanzibar plan 2025",
        "notes.md": "Meeting notes",
        "deck.pptx": "deck.pptx",
        "titled.pptx": "Osprey kickoff",
        "book.xlsx": "book.xlsx",
    }


def test_files_are_counted_first_for_a_total(root):
    from inlet.connectors.model import Progress

    items, _ = run(connector(root))
    assert items[0] == Progress(total=5, unit="files")
    done = [i.done for i in items if isinstance(i, Progress) and i.done is not None]
    assert done == sorted(done) and done[-1] == 5


def after_the_walk(conn: FilesConnector, checkpoint, change):
    """A run whose files are listed, then `change()`d, then read: what happens between the two."""
    items = conn.load(checkpoint)
    first = next(items)
    assert first.total is not None  # the walk is done before the total is yielded
    change()
    rest = list(items)
    assert isinstance(rest[-1], Checkpoint)
    return [first, *rest], rest[-1].state


def into_a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def into_a_link_loop(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.name)


@pytest.mark.parametrize("spoil, why", [(into_a_folder, "is a directory"), (into_a_link_loop, "symbolic links")])
def test_a_file_that_cannot_be_read_is_a_failed_skip_and_its_document_stays(root, spoil, why):
    conn = connector(root)
    _, state = run(conn)
    before = state["files"]["notes.txt"]
    (root / "new.md").write_text("# New\n\nindexed all the same")
    items, after = after_the_walk(conn, state, lambda: spoil(root / "notes.txt"))
    [skip] = by_type(items, Skipped)
    assert (skip.id, skip.title, skip.failed) == ("docs:notes.txt", "notes.txt", True)
    assert skip.reason.startswith("cannot be read (") and why in skip.reason
    assert [d.id for d in by_type(items, Document)] == ["docs:new.md"]
    assert by_type(items, Deletion) == [] and after["files"]["notes.txt"] == before


def test_a_file_deleted_between_the_walk_and_its_read_is_a_deletion_not_an_error(root):
    conn = connector(root)
    _, state = run(conn)
    items, after = after_the_walk(conn, state, (root / "notes.txt").unlink)
    assert by_type(items, Skipped) == []
    assert [d.id for d in by_type(items, Deletion)] == ["docs:notes.txt"] and "notes.txt" not in after["files"]


@pytest.fixture
def shared() -> Path:
    """A folder any user may read, for running the connector as one that is not root."""
    folder = Path(tempfile.mkdtemp(prefix="inlet-files-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:  # as root, rglob enters every folder; else none is locked now
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


def unprivileged(action):
    """`action()` as a user who is not root (root reads every file whatever its mode): in a child
    process that becomes `nobody` when the tests run as root."""
    if os.geteuid() != 0:
        return action()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            outcome = ("done", action())
        except BaseException as exc:  # handed to the parent, which raises it
            outcome = ("raised", exc)
        with os.fdopen(write, "wb") as out:
            out.write(pickle.dumps(outcome))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        how, value = pickle.loads(answer.read())
    os.waitpid(pid, 0)
    if how == "raised" and isinstance(value, PermissionError) and value.filename is None:
        pytest.skip(f"cannot drop root's privileges here: {value}")
    if how == "raised":
        raise value
    return value


def locked(path: Path) -> None:
    path.chmod(0)


def test_a_file_the_process_may_not_read_is_a_failed_skip_and_keeps_its_entry(shared):
    (shared / "open.md").write_text("# Open\n\nanyone may read this")
    secret = shared / "secret.md"
    secret.write_text("# Secret\n\nfirst version")
    conn = connector(shared)
    _, state = run(conn)
    secret.write_text("# Secret\n\nsecond, longer version")
    locked(secret)
    items, after = unprivileged(lambda: run(conn, state))
    assert [(s.id, s.reason, s.failed) for s in by_type(items, Skipped)] == [
        ("docs:secret.md", "cannot be read (permission denied)", True)
    ]
    assert by_type(items, Deletion) == [] and after["files"]["secret.md"] == state["files"]["secret.md"]
    items, _ = unprivileged(lambda: run(conn))  # a first run: the rest is indexed
    assert [d.id for d in by_type(items, Document)] == ["docs:open.md"]


def test_a_folder_the_process_may_not_list_is_a_failed_skip_and_deletes_nothing(shared):
    (shared / "top.md").write_text("# Top\n\nat the top")
    (shared / "data" / "locked" / "deep").mkdir(parents=True)
    (shared / "data" / "locked" / "a.md").write_text("# A\n\nin the locked folder")
    (shared / "data" / "locked" / "deep" / "b.md").write_text("# B\n\ndeeper down")
    (shared / "data" / "lockedness.md").write_text("# Beside\n\nnot in the locked folder")
    conn = connector(shared)
    _, state = run(conn)
    (shared / "data" / "lockedness.md").unlink()
    locked(shared / "data" / "locked")
    items, after = unprivileged(lambda: run(conn, state))
    [skip] = by_type(items, Skipped)
    assert (skip.id, skip.title, skip.failed, skip.folder) == ("docs:data/locked/", "data/locked/", True, True)
    assert "cannot be listed (permission denied)" in skip.reason
    assert [d.id for d in by_type(items, Deletion)] == ["docs:data/lockedness.md"]
    assert set(after["files"]) == {"top.md", "data/locked/a.md", "data/locked/deep/b.md"}

    def live():
        try:
            return set(conn.live_ids())
        except IncompleteListingError as exc:
            return str(exc)

    assert "data/locked/ (permission denied)" in unprivileged(live)


def test_a_locked_folder_that_exclude_leaves_out_is_not_entered(shared):
    (shared / "top.md").write_text("# Top\n\nat the top")
    (shared / "private" / "inner").mkdir(parents=True)
    (shared / "private" / "inner" / "a.md").write_text("# A\n\nleft out")
    (shared / "logs").mkdir()
    (shared / "logs" / "b.md").write_text("# B\n\nonly the .log files are left out here")
    locked(shared / "private" / "inner")
    locked(shared / "logs")
    conn = connector(shared, exclude=["private/**", "*.log"])
    items, state = unprivileged(lambda: run(conn))
    assert [(s.id, s.folder) for s in by_type(items, Skipped)] == [("docs:logs/", True)]
    assert list(state["files"]) == ["top.md"]


def test_a_root_the_process_may_not_list_is_a_config_error(shared):
    (shared / "top.md").write_text("# Top\n\nat the top")
    locked(shared)

    def attempt():
        try:
            return run(connector(shared))
        except ConfigError as exc:
            return str(exc)

    assert "cannot be listed (permission denied)" in unprivileged(attempt)


def test_binary_bytes_under_a_text_name_are_skipped_by_policy(root):
    noise = random.Random(7).randbytes(4096)
    (root / "binary.txt").write_bytes(noise)
    (root / "noext").write_bytes(noise[:300])
    (root / "nuls.txt").write_bytes(b"\0" * 100)
    (root / "page2.html").write_bytes(b"<html>" + noise)
    items, state = run(connector(root))
    skipped = {s.id: s for s in by_type(items, Skipped)}
    assert set(skipped) == {"docs:binary.txt", "docs:noext", "docs:nuls.txt", "docs:page2.html"}
    assert all(not s.failed and s.reason.endswith("binary content, not text") for s in skipped.values())
    assert skipped["docs:noext"].reason == "noext: binary content, not text"
    assert len(by_type(items, Document)) == 5 and "nuls.txt" in state["files"]


def test_text_with_a_few_control_characters_or_in_utf16_is_still_text():
    assert extract_text("Page one\fPage two\r\n\tindented \x1b[1mbold\x1b[0m\x07".encode(), "a.txt")
    assert extract_text("Grüße aus Köln".encode("utf-16"), "notepad.txt") == "Grüße aus Köln"
    assert extract_text("café".encode("cp1252"), "old.md") == "café"
    with pytest.raises(NotTextError, match="x.md: binary content"):
        extract_text("text\x01\x02\x03\x04\x05\x06 with controls".encode(), "x.md")


def test_links_and_special_files_are_named_for_what_they_are(root, caplog):
    (root / "dangling.md").symlink_to(root / "gone.md")
    (root / "loop.md").symlink_to("loop.md")
    os.mkfifo(root / "pipe.txt")  # never opened: it is not a regular file
    with caplog.at_level(logging.INFO, logger="inlet.connectors.files"):
        items, _ = run(connector(root))
    assert len(by_type(items, Document)) == 5 and by_type(items, Skipped) == []
    said = {r.getMessage(): r.levelno for r in caplog.records}
    assert said == {
        "source 'docs': dangling.md is a broken link; not indexed": logging.INFO,
        "source 'docs': loop.md is a link loop; not indexed": logging.INFO,
        "source 'docs': pipe.txt is not a regular file; not indexed": logging.INFO,
    }
    assert stat.S_ISFIFO(os.lstat(root / "pipe.txt").st_mode)


def test_a_name_that_is_not_utf8_is_indexed_with_its_bytes_escaped(root):
    with open(os.path.join(os.fsencode(root), b"caf\xe9.md"), "wb") as latin1_named:  # a zip's or Samba's name
        latin1_named.write(b"# Menu\n\nThe espresso machine is fixed.\n")
    items, state = run(connector(root))
    assert "docs:caf\\xe9.md" in {d.id for d in by_type(items, Document)}
    assert not [s for s in by_type(items, Skipped) if s.failed]
    again, _ = run(connector(root), state)
    assert not by_type(again, Document) and not by_type(again, Deletion)  # the same id every run


def test_a_name_spelt_like_another_names_escape_is_a_document_of_its_own(root):
    """probe34h F1: `caf<E9>.md` (not UTF-8) and a file literally named `caf\\xe9.md` got one id:
    one was never indexed and the run said nothing of it."""
    with open(os.path.join(os.fsencode(root), b"caf\xe9.md"), "wb") as latin1_named:
        latin1_named.write(b"# Menu\n\nApples and oranges.\n")
    (root / "caf\\xe9.md").write_text("# Zoo\n\nZebra and giraffe.\n")
    (root / "a\\b.md").write_text("# Slash\n\nA backslash in a name.\n")
    items, state = run(connector(root))
    ids = {d.id: d.text for d in by_type(items, Document)}
    assert "Apples" in ids["docs:caf\\xe9.md"] and "Zebra" in ids["docs:caf\\\\xe9.md"], sorted(ids)
    assert "docs:a\\\\b.md" in ids and not by_type(items, Skipped)
    again, _ = run(connector(root), state)
    assert not by_type(again, Document) and not by_type(again, Deletion)


def test_a_name_with_a_backslash_is_shown_as_it_is(root):
    """probe35a F3: the doubled backslash of the stored id (`x\\\\y.md`) showed in the title and
    `metadata.path` of a file named `x\\y.md`; only the id is escaped (a name that is not UTF-8
    keeps its bytes shown `\\xNN`, as in its id)."""
    (root / "x\\y.md").write_text("Back slash walrus.\n")
    (root / "a\\b").mkdir()
    (root / "a\\b" / "inner.txt").write_text("Inside a folder with a backslash.\n")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.md"), "wb") as latin1_named:
        latin1_named.write(b"Apples and oranges.\n")
    (root / "bin\\ary.md").write_bytes(b"\x00\x01\x02" * 100)  # a skip, titled by its name
    items, _ = run(connector(root))
    docs = {d.id: d for d in by_type(items, Document)}
    shown = {i: (d.title, d.metadata["path"], d.metadata["folder"]) for i, d in docs.items()}
    assert shown["docs:x\\\\y.md"] == ("x\\y.md", "x\\y.md", "."), shown
    assert shown["docs:a\\\\b/inner.txt"] == ("a\\b/inner.txt", "a\\b/inner.txt", "a\\b"), shown
    assert shown["docs:caf\\xe9.md"] == ("caf\\xe9.md", "caf\\xe9.md", "."), shown
    assert [(s.id, s.title) for s in by_type(items, Skipped)] == [("docs:bin\\\\ary.md", "bin\\ary.md")]


def test_a_new_acl_reaches_every_file_unchanged_since(root):
    _, state = run(connector(root))
    items, state = run(connector(root, public=False, users=["alice@example.com"]), state)
    docs = by_type(items, Document)
    assert len(docs) == 5 and all(d.acl.users == ["alice@example.com"] and not d.acl.public for d in docs)
    again, _ = run(connector(root, public=False, users=["alice@example.com"]), state)
    assert not by_type(again, Document)


def test_a_file_a_policy_now_skips_leaves_the_index(root):
    _, state = run(connector(root, max_file_bytes=1000))
    (root / "notes.txt").write_text("")  # emptied
    (root / "guide" / "setup.md").write_text("x" * 2000)  # over the cap
    items, _ = run(connector(root, max_file_bytes=1000), state)
    assert {d.id for d in by_type(items, Deletion)} == {"docs:notes.txt", "docs:guide/setup.md"}
    assert {s.id for s in by_type(items, Skipped) if not s.failed} >= {"docs:notes.txt", "docs:guide/setup.md"}


def test_an_emptied_root_deletes_nothing(root):
    _, state = run(connector(root))
    for path in sorted(root.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    items, after = run(connector(root), state)
    assert not by_type(items, Deletion)
    (skip,) = by_type(items, Skipped)
    assert skip.failed and skip.folder and skip.id == "docs:" and "unmounted" in skip.reason
    assert after["files"] == state["files"]


def test_a_double_star_in_a_glob_also_matches_no_folder(root):
    (root / "guide" / "sub").mkdir()
    (root / "guide" / "sub" / "deep.md").write_text("# Deep\n\nNested.\n")
    items, _ = run(connector(root, include=["guide/**/*.md"]))
    assert {d.id for d in by_type(items, Document)} == {"docs:guide/setup.md", "docs:guide/sub/deep.md"}
    items, _ = run(connector(root, exclude=["guide/**/*.md"]))
    assert not {d.id for d in by_type(items, Document)} & {"docs:guide/setup.md", "docs:guide/sub/deep.md"}


def test_markdown_front_matter_is_metadata_and_its_title_the_title(root):
    (root / "fm.md").write_text("---\ntitle: Release Train\n# a yaml comment\ntags: [ops]\n---\nShips every Tuesday.\n")
    doc = next(d for d in by_type(run(connector(root))[0], Document) if d.id == "docs:fm.md")
    assert doc.title == "Release Train" and doc.text.strip() == "Ships every Tuesday."


def test_a_markdown_file_opening_with_a_rule_and_a_sentence_keeps_the_sentence(root):
    """Only `key: value` lines between `---` lines are front matter: a note or a slide file that
    opens with a rule keeps its first section, however it continues."""
    (root / "hr.md").write_text(
        "---\nThe sealiondock rollout starts Monday and the hangar opens at six\n---\n\nSecond part of the note.\n"
    )
    (root / "slides.md").write_text("---\n- first slide: the otterquay kickoff\n- agenda\n---\nSecond slide\n")
    (root / "meta.md").write_text("---\ntitle: Plan\ntags:\n  - ops\n  - q3\nsummary: |\n  Long\n---\nBody.\n")
    docs = {d.id: d for d in by_type(run(connector(root))[0], Document)}
    assert "The sealiondock rollout starts Monday and the hangar opens at six" in docs["docs:hr.md"].text
    assert "Second part of the note." in docs["docs:hr.md"].text
    assert "the otterquay kickoff" in docs["docs:slides.md"].text
    assert docs["docs:meta.md"].text.strip() == "Body." and docs["docs:meta.md"].title == "Plan"


def test_a_password_protected_pdf_is_a_skip_by_policy_with_its_reason(root):
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf("Pay", ["Salaries of the ibexfold team."]))))
    writer.encrypt(user_password="secret", owner_password="owner")
    writer.write(root / "pay.pdf")
    items, _ = run(connector(root))
    assert [(s.id, s.reason, s.failed) for s in by_type(items, Skipped)] == [
        ("docs:pay.pdf", "pay.pdf: encrypted PDF (password-protected): not read", False)
    ]


def test_a_deck_of_pictures_only_has_no_text(root):
    (root / "photos.pptx").write_bytes(make_pptx("", [("", "")]))  # slides with nothing written on them
    items, _ = run(connector(root))
    assert [(s.id, s.reason, s.failed) for s in by_type(items, Skipped)] == [("docs:photos.pptx", "no text", False)]


def test_what_backfill_since_left_out_stays_out_until_it_changes(root):
    old = datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp()
    for path in (root / "notes.txt", root / "page.html"):
        os.utime(path, (old, old))
    conn = connector(root)
    items, state = run_since(conn, datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert {"docs:notes.txt", "docs:page.html"}.isdisjoint(d.id for d in by_type(items, Document))
    items, state = run(conn, state)
    assert not by_type(items, Document)  # the next sync does not bring them in after all
    (root / "notes.txt").write_text("Plain notes about the Osprey project, revised.")
    items, _ = run(conn, state)
    assert [d.id for d in by_type(items, Document)] == ["docs:notes.txt"]


def run_since(conn: FilesConnector, since: datetime):
    items = list(conn.load(None, since=since))
    return items, items[-1].state


def test_a_new_acl_reaches_a_file_unreadable_at_the_time_once_it_can_be_read(shared):
    (shared / "open.md").write_text("# Open\n\nanyone may read this")
    secret = shared / "secret.md"
    secret.write_text("# Secret\n\nthe plan")
    _, state = run(connector(shared))
    narrowed = connector(shared, public=False, users=["alice@example.com"])
    locked(secret)
    items, state = unprivileged(lambda: run(narrowed, state))
    assert [d.id for d in by_type(items, Document)] == ["docs:open.md"]
    secret.chmod(0o644)
    items, state = unprivileged(lambda: run(narrowed, state))
    assert {d.id: d.acl.users for d in by_type(items, Document)}["docs:secret.md"] == ["alice@example.com"]
    items, _ = unprivileged(lambda: run(narrowed, state))
    assert not by_type(items, Document)  # done: no more relabelling


def test_a_raised_size_cap_reads_what_it_left_out(root):
    _, state = run(connector(root, max_file_bytes=30))
    items, _ = run(connector(root), state)
    assert {"docs:report.pdf", "docs:plan.docx"} <= {d.id for d in by_type(items, Document)}


def test_live_ids_of_an_emptied_root_decide_nothing(root):
    run(connector(root))
    for path in sorted(root.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    with pytest.raises(IncompleteListingError, match="holds no file"):
        list(connector(root).live_ids())


class _SavedWhileRead(FilesConnector):
    """Reads `victim` first in the middle of a save by another program: truncated, read, then written."""

    settle_seconds = 0.0
    victim = "notes.txt"
    final = b"Version two of the Osprey notes."
    caught = 0

    def _read(self, rel, path):
        if rel != self.victim or self.caught:
            return super()._read(rel, path)
        self.caught += 1
        path.write_bytes(b"")  # the writer truncates ...
        data = super()._read(rel, path)
        path.write_bytes(self.final)  # ... and writes the new text right after this read
        return data


class _StillBeingWritten(_SavedWhileRead):
    """`victim` reads empty at every read and changes at every read (a writer that never finishes)."""

    def _read(self, rel, path):
        if rel != self.victim:
            return super()._read(rel, path)
        self.caught += 1
        path.write_bytes(b"")
        data = FilesConnector._read(self, rel, path)
        path.write_bytes(b"x" * self.caught)
        return data


def test_a_file_caught_in_the_middle_of_a_save_is_read_again_not_deleted(root):
    _, state = run(connector(root))
    config = FilesConnector.Config(name="docs", type="files", path=root)
    (root / "notes.txt").write_text("Version one, being replaced.")
    items, state = run(_SavedWhileRead(config), state)
    assert not by_type(items, Deletion) and not by_type(items, Skipped)
    (doc,) = by_type(items, Document)
    assert doc.id == "docs:notes.txt" and doc.text == "Version two of the Osprey notes."

    (root / "notes.txt").write_text("Version three, never finished.")
    items, after = run(_StillBeingWritten(config), state)
    assert not by_type(items, Deletion) and not by_type(items, Document)
    (skip,) = by_type(items, Skipped)
    assert skip.id == "docs:notes.txt" and not skip.failed and "kept as it was" in skip.reason
    assert after["files"]["notes.txt"] == state["files"]["notes.txt"]  # read again by the next run


def test_an_include_glob_matching_no_file_is_a_skip_naming_it_and_the_closest_glob(root, caplog):
    conn = connector(root, include=["**/*.md", "**/*.txtt"])
    with caplog.at_level(logging.WARNING):
        items, _ = run(conn)
    assert [d.id for d in by_type(items, Document)] == ["docs:guide/setup.md"]
    (skip,) = by_type(items, Skipped)
    assert skip.id == "docs:include=**/*.txtt" and not skip.failed  # a skip by policy: the run stays ok
    assert "key 'include'" in skip.reason and "'**/*.txtt'" in skip.reason and "'**/*.txt'" in skip.reason
    assert "'**/*.txtt'" in caplog.text


def test_an_include_typo_is_never_offered_a_hidden_folder(root):
    """probe33e F2: "guid/**" was offered ".git/**" as the closest glob; following the advice indexed
    the repository's config (a token in its remote URL) for everyone. Hidden paths are left out by
    default, so they are offered only to a glob that names a hidden part itself."""
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text('[remote "origin"]\n  url = https://alice:token@example.com/r.git\n')
    (root / ".github").mkdir()
    (root / ".github" / "guide.md").write_text("Contributing.")
    items, _ = run(connector(root, include=["**/*.md", "guid/**"]))
    (skip,) = by_type(items, Skipped)
    assert "'guid/**'" in skip.reason and "'guide/**'" in skip.reason and ".git" not in skip.reason
    items, _ = run(connector(root, include=["**/*.md", ".githb/**"]))
    (skip,) = by_type(items, Skipped)
    assert "'.github/**'" in skip.reason


def test_include_globs_matching_no_file_fail_the_run_and_the_prune_deleting_nothing(root):
    _, state = run(connector(root))
    typo = connector(root, include=["**/*.mdx"])
    for checkpoint in (state, None):  # a sync, and the backfill its message once advised
        with pytest.raises(NothingInScopeError, match=r"key 'include'.*'\*\*/\*\.mdx'.*closest: '\*\*/\*\.md'"):
            list(typo.load(checkpoint))
    with pytest.raises(NothingInScopeError, match="include"):
        list(typo.live_ids())


def test_a_folder_whose_files_exclude_leaves_all_out_deletes_nothing_and_says_why(root):
    _, state = run(connector(root))
    items, after = run(connector(root, exclude=["**"]), state)
    assert not by_type(items, Deletion) and after["files"] == state["files"]
    (skip,) = by_type(items, Skipped)
    assert skip.failed and skip.folder and "no file of the folder is left to index now (5 before)" in skip.reason
    assert "unmounted" not in skip.reason  # the folder is there: it is the config that leaves everything out


@pytest.fixture
def dotted(tmp_path: Path) -> Path:
    for rel in ("a.md", ".github/CONTRIBUTING.md", ".hidden/n.md", ".notes.md", ".git/HEAD", ".gitignore"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"# {rel}\n\nsome text\n")
    return tmp_path


def test_hidden_files_are_left_out_unless_an_include_glob_names_them(dotted):
    items, _ = run(connector(dotted))
    assert [d.id for d in by_type(items, Document)] == ["docs:a.md"] and not by_type(items, Skipped)
    items, _ = run(connector(dotted, include=["**/*", ".github/**", ".notes.md"]))
    ids = {d.id for d in by_type(items, Document)}
    assert ids == {"docs:a.md", "docs:.github/CONTRIBUTING.md", "docs:.notes.md"}  # not .git (a `.github` prefix)
    assert not by_type(items, Skipped)


def test_a_file_of_a_type_not_read_is_a_skip_by_policy_after_every_file_read(root):
    (root / "api.rst").write_text("API\n===\n")
    (root / "guide" / "shot.PNG").write_bytes(b"\x89PNG")
    (root / "data.csv").write_text("a,b\n")
    (root / "zz-broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (root / ".secret.json").write_text("{}")  # hidden: left out unseen
    conn = connector(root, exclude=["*.csv"])
    items, state = run(conn)
    skipped = by_type(items, Skipped)
    assert [(s.id, s.failed) for s in skipped] == [
        ("docs:zz-broken.pdf", True),  # an error comes first: the skips a run records are capped
        ("docs:api.rst", False),
        ("docs:guide/shot.PNG", False),
    ]
    assert skipped[1].reason.startswith("its type (.rst) is not read: only .docx") and ".md" in skipped[1].reason
    assert items.index(skipped[1]) > max(items.index(d) for d in by_type(items, Document))
    assert not {"api.rst", "guide/shot.PNG"} & set(state["files"])  # no entry: nothing of it is a change
    again, _ = run(conn, state)
    assert [s.id for s in by_type(again, Skipped) if not s.failed] == ["docs:api.rst", "docs:guide/shot.PNG"]
    assert not by_type(again, Deletion) and not by_type(again, Document)
