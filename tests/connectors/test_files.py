import os
from pathlib import Path

import pytest

from inlet.connectors.files import FilesConnector
from inlet.connectors.model import Checkpoint, Deletion, Document, Skipped
from inlet.errors import ConfigError
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
    (tmp_path / "image.png").write_bytes(b"\x89PNG not text")
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


def test_symlinks_out_of_the_root_are_refused(root, tmp_path_factory, caplog):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("top secret")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    (root / "inside.txt").symlink_to(root / "notes.txt")
    items, _ = run(connector(root))
    texts = " ".join(d.text for d in by_type(items, Document))
    assert "top secret" not in texts
    assert "docs:inside.txt" in {d.id for d in by_type(items, Document)}
    assert "outside" in caplog.text


def test_include_exclude_and_size_cap(root):
    items, _ = run(connector(root, include=["**/*.md", "*.txt"], exclude=["notes*"]))
    assert [d.id for d in by_type(items, Document)] == ["docs:guide/setup.md"]
    items, _ = run(connector(root, max_file_bytes=40))
    assert {s.id for s in by_type(items, Skipped) if not s.failed} >= {"docs:report.pdf", "docs:plan.docx"}


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
