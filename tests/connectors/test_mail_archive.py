"""The mail_archive connector (Enron RFC 822 files, mbox, Maildir) and the shared body cleaning."""

from __future__ import annotations

import base64
import mailbox
import os
import tarfile
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from inlet.connectors import extract
from inlet.connectors import mail as mail_module
from inlet.connectors.base import LivePrefix
from inlet.connectors.mail import MailArchiveConfig, MailArchiveConnector
from inlet.connectors.mail_text import MAX_HEADER_CHARS, header_text, new_content
from inlet.connectors.model import Checkpoint, Deletion, Document, Progress, Skipped
from inlet.index.chunking import chunk_text
from inlet.sandbox.documents import make_pdf
from inlet.sandbox.workspace import DATA_DIR


def archive(path: Path, **kw: Any) -> MailArchiveConnector:
    return MailArchiveConnector(MailArchiveConfig(name="arch", type="mail_archive", path=path, **kw))


def run(conn: MailArchiveConnector, checkpoint: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any]]:
    items = list(conn.load(checkpoint))
    assert isinstance(items[-1], Checkpoint)
    return items, items[-1].state


def docs(items: list[Any]) -> dict[str, Document]:
    return {i.id: i for i in items if isinstance(i, Document)}


@pytest.fixture(scope="module")
def enron(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("enron")
    with tarfile.open(DATA_DIR / "enron-mini.tar.gz") as tar:
        tar.extractall(root, filter="data")
    return root / "enron-mini"


def test_enron_folder_gives_one_document_per_mail(enron: Path) -> None:
    items, state = run(archive(enron, users=["auditor@example.com"]))
    got = docs(items)
    assert len(got) == 1041 == len(state["files"])
    doc = got["arch:allen-p/inbox/1."]
    assert doc.title == "RE: West Position"
    assert doc.text.endswith("Please let me know if you still need Curve Shift.\n\nThanks,\nHeather")
    assert doc.acl.users == ["auditor@example.com"] and not doc.acl.public
    assert doc.url == (enron / "allen-p/inbox/1.").as_uri()
    assert doc.metadata["folder"] == "allen-p/inbox"
    forwards = [d for d in got.values() if "Forwarded by" in d.text]
    assert forwards, "a bare forward keeps the quote: it is all there is"


def test_incremental_by_mtime_with_deletions(tmp_path: Path, enron: Path) -> None:
    root = tmp_path / "mail"
    root.mkdir()
    for name in ("1.", "2.", "3."):
        (root / name).write_bytes((enron / "allen-p/inbox" / name).read_bytes())
    conn = archive(root)
    _, state = run(conn)
    items, state = run(conn, state)
    assert not docs(items) and not [i for i in items if isinstance(i, Deletion)]
    (root / "2.").write_bytes((root / "2.").read_bytes().replace(b"Subject:", b"Subject: changed", 1))
    os.utime(root / "2.", ns=(1, 1))
    (root / "3.").unlink()
    items, _ = run(conn, state)
    assert set(docs(items)) == {"arch:2."} and docs(items)["arch:2."].title.startswith("changed")
    assert {i.id for i in items if isinstance(i, Deletion)} == {"arch:3."}


def mail(subject: str, body: str, attachment: tuple[str, str, bytes] | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Ann <ann@example.com>", "bob@example.com", subject
    msg["Date"] = "Mon, 3 Jun 2024 10:00:00 +0000"
    msg.set_content(body)
    if attachment:
        name, ctype, data = attachment
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg


def notes_mbox(box: Path) -> mailbox.mbox:
    """An mbox at `box` holding three notes (flushed, still open)."""
    mb = mailbox.mbox(box)
    for n in range(3):
        mb.add(mail(f"note {n}", f"body {n}"))
    mb.flush()
    return mb


def mbox_ids(box: Path) -> list[str]:
    """The ids of an mbox's messages, in the file's order (keyed by what each message is)."""
    with box.open("rb") as handle:
        keys, _ = mail_module._mbox_keys([found for *_, found in mail_module._mbox_spans(handle)], None)
    return [f"arch:{box.name}#{key}" for key in keys]


def test_mbox_messages_and_shrinking_mbox(tmp_path: Path) -> None:
    box = tmp_path / "archive.mbox"
    mb = notes_mbox(box)
    conn = archive(tmp_path)
    items, state = run(conn)
    ids = mbox_ids(box)
    assert set(docs(items)) == set(ids) and len(ids) == 3
    mb.remove(mb.keys()[-1])
    mb.flush()
    mb.close()
    os.utime(box, ns=(5, 5))
    items, _ = run(conn, state)
    assert {i.id for i in items if isinstance(i, Deletion)} == {ids[2]}


def test_an_mbox_messages_id_names_it_for_its_life_whatever_a_compaction_moves(tmp_path: Path) -> None:
    """A mail client compacts an mbox after a delete: every later message moves up. Numbered by
    position, each took the id of the one before it (a kept citation opened another mail)."""
    box = tmp_path / "Inbox.mbox"
    mb = mailbox.mbox(box)
    for n in range(5):
        message = mail(f"message number {n}", f"body {n}")
        if n != 3:  # one without a Message-ID: keyed by its bytes
            message["Message-ID"] = f"<m{n}@example.com>"
        mb.add(message)
    mb.flush()
    conn = archive(tmp_path)
    items, state = run(conn)
    before = {d.title: i for i, d in docs(items).items()}
    assert len(set(before.values())) == 5 and all(i.startswith("arch:Inbox.mbox#") for i in before.values())
    mb.remove(mb.keys()[1])
    mb.flush()
    mb.close()
    os.utime(box, ns=(5, 5))
    items, _ = run(conn, state)
    assert [i.id for i in items if isinstance(i, Deletion)] == [before["message number 1"]]
    assert {d.title: i for i, d in docs(items).items()} == {t: i for t, i in before.items() if t != "message number 1"}


def shared_id_mbox(box: Path, subjects: list[str]) -> mailbox.mbox:
    """An mbox at `box` whose messages all carry one Message-ID (a resent draft, a re-saved copy)."""
    mb = mailbox.mbox(box)
    for subject in subjects:
        message = mail(subject, f"the text of {subject}")
        message["Message-ID"] = "<same@example.com>"
        mb.add(message)
    mb.flush()
    return mb


def compacted(mb: mailbox.mbox, box: Path, drop: int, at: int) -> None:
    mb.remove(mb.keys()[drop])
    mb.flush()
    os.utime(box, ns=(at, at))


@pytest.mark.parametrize("drop", [0, 1])
def test_mbox_messages_sharing_a_message_id_keep_their_ids_whichever_is_deleted(tmp_path: Path, drop: int) -> None:
    """probe34a N3: a second message with the same Message-ID was `-2` by its place among them:
    deleting the first moved the second onto the first's id (a kept citation opened another mail).
    Now neither moves, and a later one with that Message-ID takes no deleted one's id."""
    box = tmp_path / "Inbox.mbox"
    mb = shared_id_mbox(box, ["first with dup id", "second with dup id"])
    conn = archive(tmp_path)
    items, state = run(conn)
    before = {d.title: i for i, d in docs(items).items()}
    assert len(set(before.values())) == 2
    gone = ["first with dup id", "second with dup id"][drop]
    compacted(mb, box, drop, 5)
    items, state = run(conn, state)
    assert [i.id for i in items if isinstance(i, Deletion)] == [before[gone]]
    kept = {t: i for t, i in before.items() if t != gone}
    assert {d.title: i for i, d in docs(items).items()} == kept  # the other keeps its id
    third = mail("third with dup id", "the text of a third")
    third["Message-ID"] = "<same@example.com>"
    mb.add(third)
    mb.flush()
    mb.close()
    os.utime(box, ns=(6, 6))
    items, state = run(conn, state)
    now = {d.title: i for i, d in docs(items).items()}
    assert now.pop("third with dup id") not in before.values() and now == kept  # not the deleted one's id
    items, _ = run(conn, state)
    assert not docs(items) and not [i for i in items if isinstance(i, Deletion)]


def test_an_mbox_keyed_with_a_numbered_duplicate_moves_to_stable_keys_once(tmp_path: Path) -> None:
    """An index whose mbox gave a second message with the same Message-ID `-2`: read once more, the
    second moves to its own key, `-2` deleted, the first keeps its id; an entry without `-` is not
    read again."""
    box = tmp_path / "Inbox.mbox"
    shared_id_mbox(box, ["first with dup id", "second with dup id"]).close()
    conn = archive(tmp_path)
    first, second = mbox_ids(box)
    plain = first.rpartition("#")[2]
    mtime, size = box.stat().st_mtime_ns, box.stat().st_size
    items, state = run(conn, {"files": {"Inbox.mbox": [mtime, size, 2, 3, None, [plain, f"{plain}-2"]]}})
    assert set(docs(items)) == {first, second} and second != f"arch:Inbox.mbox#{plain}-2"
    assert [i.id for i in items if isinstance(i, Deletion)] == [f"arch:Inbox.mbox#{plain}-2"]
    items, _ = run(conn, state)
    assert not docs(items) and not [i for i in items if isinstance(i, Deletion)]
    notes = tmp_path / "notes" / "archive.mbox"
    notes.parent.mkdir()
    notes_mbox(notes).close()
    keys = [i.rpartition("#")[2] for i in mbox_ids(notes)]
    stamp = [notes.stat().st_mtime_ns, notes.stat().st_size, 3, 3, None, keys]
    items, _ = run(archive(notes.parent), {"files": {"archive.mbox": stamp}})
    assert not docs(items) and not [i for i in items if isinstance(i, Deletion)]


def test_an_mbox_indexed_with_numbered_ids_moves_to_keyed_ids_once(tmp_path: Path) -> None:
    """An index made before mbox messages were keyed: read once more, each message under its key,
    the numbered ids deleted; then unchanged, not read again."""
    box = tmp_path / "archive.mbox"
    notes_mbox(box).close()
    conn = archive(tmp_path)
    mtime, size = box.stat().st_mtime_ns, box.stat().st_size
    items, state = run(conn, {"files": {"archive.mbox": [mtime, size, 3, 2]}})
    assert set(docs(items)) == set(mbox_ids(box))
    assert {i.id for i in items if isinstance(i, Deletion)} == {f"arch:archive.mbox#{n}" for n in range(3)}
    items, _ = run(conn, state)
    assert not docs(items) and not [i for i in items if isinstance(i, Deletion)]


def test_mbox_body_lines_beginning_from_are_read_as_sent(tmp_path: Path) -> None:
    """An mbox writer stores a body line "From ..." as ">From ...": read back, the message says what was sent."""
    body = "Hi Alice,\n\n> Does it close this month?\nFrom the board's view the narwhalpoint deal closes on 30 June."
    body += "\n\nBob"
    box = mailbox.mbox(tmp_path / "archive.mbox")
    box.add(mail("deal", body))
    box.flush()
    box.close()
    assert b"\n>From the board" in (tmp_path / "archive.mbox").read_bytes()
    text = docs(run(archive(tmp_path))[0])[mbox_ids(tmp_path / "archive.mbox")[0]].text
    assert text.endswith("Hi Alice,\n\nFrom the board's view the narwhalpoint deal closes on 30 June.\n\nBob")


def test_maildir_flag_rename_keeps_the_id(tmp_path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "box" / sub).mkdir(parents=True)
    (tmp_path / "box/new/1717.M1.host").write_bytes(bytes(mail("hello", "first")))
    conn = archive(tmp_path)
    items, state = run(conn)
    assert set(docs(items)) == {"arch:box/1717.M1.host"}
    (tmp_path / "box/new/1717.M1.host").rename(tmp_path / "box/cur/1717.M1.host:2,S")
    items, _ = run(conn, state)
    kinds = [(type(i).__name__, i.id) for i in items if not isinstance(i, (Checkpoint, Progress))]
    assert kinds == [("Deletion", "arch:box/1717.M1.host"), ("Document", "arch:box/1717.M1.host")]


def test_an_apple_mail_emlx_file_is_read_as_the_message_it_holds(tmp_path: Path) -> None:
    raw = bytes(mail("Quarterly review", "The review moves to Friday."))
    flags = b'<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>flags</key></dict></plist>\n'
    (tmp_path / "Messages").mkdir()
    (tmp_path / "Messages/123.emlx").write_bytes(b"%d\n" % len(raw) + raw + flags)
    items, _ = run(archive(tmp_path))
    got = docs(items)["arch:Messages/123.emlx"]
    assert got.title == "Quarterly review" and "The review moves to Friday." in got.text
    assert "plist" not in got.text


def test_a_long_recipient_list_is_counted_in_the_text_and_kept_whole_in_the_metadata(tmp_path: Path) -> None:
    msg = mail("all hands", "The all-hands moves to Thursday.")
    msg.replace_header("To", ", ".join(f"person{n}@example.com" for n in range(40)))
    (tmp_path / "a.eml").write_bytes(bytes(msg))
    items, _ = run(archive(tmp_path))
    got = docs(items)["arch:a.eml"]
    to_line = next(line for line in got.text.splitlines() if line.startswith("To: "))
    assert to_line.startswith("To: person0@example.com, person1@example.com") and to_line.endswith(" and 32 more")
    assert "person39@example.com" not in got.text  # a passage is not a list of addresses
    assert "person39@example.com" in got.metadata["participants"]


def test_attachments_extracted_and_capped(tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(
        bytes(mail("memo", "see attached", ("memo.pdf", "application/pdf", make_pdf("Pipeline capacity memo", []))))
    )
    (tmp_path / "b.eml").write_bytes(bytes(mail("big", "see attached", ("big.txt", "text/plain", b"x" * 5000))))
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01 not a mail")
    items, _ = run(archive(tmp_path, max_attachment_bytes=1000))
    got = docs(items)
    assert set(got) == {"arch:a.eml", "arch:b.eml"}
    assert "Pipeline capacity memo" in got["arch:a.eml"].text
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [(s.id, s.failed) for s in skipped] == [("arch:b.eml#big.txt", False)]


def test_a_binary_attachment_under_a_text_name_is_skipped_by_policy(tmp_path: Path) -> None:
    noise = bytes(range(256)) * 4
    (tmp_path / "a.eml").write_bytes(bytes(mail("dump", "core dump attached", ("core.txt", "text/plain", noise))))
    items, _ = run(archive(tmp_path))
    assert "core dump attached" in docs(items)["arch:a.eml"].text and "\x01" not in docs(items)["arch:a.eml"].text
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [(s.id, s.reason, s.failed) for s in skipped] == [
        ("arch:a.eml#core.txt", "core.txt: binary content, not text", False)
    ]


def test_a_body_split_around_an_image_and_a_message_attached_are_all_read(tmp_path: Path) -> None:
    forwarded = EmailMessage()
    forwarded["From"], forwarded["Subject"] = "carol@example.com", "Manatee survey"
    forwarded.set_content("The manatee count went up this spring.")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ann@example.com", "bob@example.com", "Field notes"
    msg.set_content("The osprey decision is final.")  # Apple Mail: text, an inline image, more text
    msg.add_attachment(b"\x89PNG...", maintype="image", subtype="png", filename="nest.png", disposition="inline")
    msg.add_attachment("Second half: the heron plan waits.", disposition="inline")
    msg.add_attachment(forwarded)  # a forward as attachment: message/rfc822
    (tmp_path / "a.eml").write_bytes(bytes(msg))
    text = docs(run(archive(tmp_path))[0])["arch:a.eml"].text
    assert "osprey decision" in text and "heron plan waits" in text
    assert "manatee count went up" in text and "Manatee survey" in text


def test_an_attached_mail_is_capped_as_a_body_is_and_the_cut_is_recorded(tmp_path: Path) -> None:
    """An attached mail's HTML body is bounded like the message's own (max_body_bytes), not read whole."""
    forwarded = EmailMessage()
    forwarded["From"], forwarded["Subject"] = "carol@example.com", "Long newsletter"
    forwarded.set_content("".join(f"<p>Paragraph {n} of the newsletter.</p>" for n in range(5000)), subtype="html")
    msg = mail("Fwd: newsletter", "See the attached newsletter.")
    msg.add_attachment(forwarded)
    (tmp_path / "a.eml").write_bytes(bytes(msg))
    items, _ = run(archive(tmp_path, max_body_bytes=2000))
    text = docs(items)["arch:a.eml"].text
    assert "Paragraph 0 of the newsletter" in text and "Paragraph 4999" not in text
    cut = [i for i in items if isinstance(i, Skipped) and i.id.startswith("arch:a.eml#")]
    assert len(cut) == 1 and not cut[0].failed and "body truncated at 2000 bytes" in cut[0].reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Sounds good.\n\nOn Mon, 3 Jun 2024, Bob <b@x.com> wrote:\n> shall we?", "Sounds good."),
        ("Yes.\n\n-----Original Message-----\nFrom: Bob\nSent: today\n\nold", "Yes."),
        ("Done\n\nFrom: Bob Smith\nSent: Monday\nTo: Ann\nSubject: x\n\nold", "Done"),
        ("Thanks!\n-- \nAnn Example\nCEO", "Thanks!"),
        ("Top\n> quoted line\nBottom", "Top\nBottom"),
        ("Thanks.\n\nOn Mon, Dec 7, 2026 at 10:00 AM Alice Example <alice@ex.com>\nwrote:\n> earlier", "Thanks."),
        ("OK.\nOn the other hand we could wait\nfor them. Bob wrote:\n> x", "OK.\nOn the other hand we could wait"),
        (
            "-----Original Message-----\nFrom: Bob\n\nonly the quote",
            "-----Original Message-----\nFrom: Bob\n\nonly the quote",
        ),
    ],
)
def test_new_content(body: str, expected: str) -> None:
    assert new_content(body) == expected


ITINERARY = (
    "Dear Ms Smith, your booking reference is QX7P2L. Your itinerary:\nFlight LX 318\nFrom: Zurich (ZRH) 07:05\n"
    "To: London Heathrow (LHR) 07:50\nDate: 12 December 2026\n\nReturn flight LX 319\nFrom: London (LHR) 18:10\n"
    "To: Zurich (ZRH) 20:55\nDate: 19 December 2026\n\nBaggage allowance: one bag of 23 kg."
)
AUDIT = "Team,\nHere is what the auditor wrote:\nAll invoices above 10,000 EUR need two approvals.\nApply this now."


@pytest.mark.parametrize("body", [ITINERARY, AUDIT, "Board notes.\n\n>From Monday the desk closes at 5.\n\nBob"])
def test_ordinary_mail_that_looks_like_a_quote_is_kept_whole(body: str) -> None:
    """From:/To:/Date: lines with no address, a sentence ending in "wrote:" with nothing quoted below
    it, an mbox's ">From " line alone: the message's own text, not quoted history."""
    assert new_content(body) == body.replace(">From", "From")


def test_a_reply_history_is_still_trimmed_whoever_wrote_it() -> None:
    history = "\n\nOn Mon, 7 Dec 2026 at 10:00, Bob <bob@example.com> wrote:\nThe old message, unquoted."
    assert new_content("Sounds good." + history) == "Sounds good."
    outlook = "\n\nFrom: Smith, Bob\nSent: Monday, 7 December 2026 10:00\nTo: Ann\nSubject: RE: rota\n\nold"
    assert new_content("Done." + outlook) == "Done."
    assert new_content("Done.\n\nFrom: bob@example.com\nTo: ann@example.com\n\nold") == "Done."


def test_answers_written_between_quoted_questions_are_kept() -> None:
    body = (
        "Hi Bob, answers inline.\n\nOn Mon, 7 Dec 2026, Bob <bob@example.com> wrote:\n"
        "> Which port does the ibisrelay use?\n8443, the old 8080 is closed since Friday.\n"
        "> Who owns the certificate?\nDana renews it; it expires 3 March.\n>\n> Thanks, Bob\n-- \nAlice"
    )
    assert new_content(body) == (
        "Hi Bob, answers inline.\n\n8443, the old 8080 is closed since Friday.\nDana renews it; it expires 3 March."
    )
    nested = "Sure.\n\nOn Mon, Bob <b@x.com> wrote:\n> On Sun, Carol <c@x.com> wrote:\n>> old\n> When?\nMonday."
    assert new_content(nested) == "Sure.\n\nMonday."  # a quoted attribution is a quoted line like any other


FORWARDED = "Hi, I was charged twice for INV-88231.\nPlease refund one of them."


@pytest.mark.parametrize(
    ("subject", "note", "block"),
    [
        (  # Gmail: its banner, whatever the subject
            "Double charge",
            "FYI, can you handle this one?\n-- \nBob",
            "---------- Forwarded message ---------\nFrom: Carla <carla@example.org>\nDate: Mon, 7 Dec 2026\n"
            "Subject: Double charge\nTo: <bob@example.com>\n\n",
        ),
        (  # Apple Mail
            "Fwd: Double charge",
            "FYI, can you handle this one?",
            "Begin forwarded message:\n\nFrom: Carla <carla@example.org>\nSubject: Double charge\n"
            "Date: 7 December 2026\n\n",
        ),
        (  # Outlook: its reply's rule and header block, under a FW: subject
            "FW: Double charge",
            "FYI, can you handle this one?",
            "________________________________\nFrom: Carla <carla@example.org>\nSent: Monday, 7 December 2026 10:00\n"
            "To: Bob\nSubject: Double charge\n\n",
        ),
        (  # Outlook as plain text
            "Fw: Double charge",
            "FYI, can you handle this one?",
            "-----Original Message-----\nFrom: Carla\nSent: Monday, 7 December 2026 10:00\nSubject: Double charge\n\n",
        ),
    ],
)
def test_a_forward_with_a_note_keeps_the_forwarded_message(subject: str, note: str, block: str) -> None:
    """The forwarded message is content, whole (the recipient has no other copy of it, nor of what it quotes)."""
    forwarded = FORWARDED + "\n\nOn Sun, 6 Dec 2026, Bob <bob@example.com> wrote:\n> Your order shipped."
    text = new_content(f"{note}\n\n{block}{forwarded}", subject)
    assert text.startswith("FYI, can you handle this one?\n") and "-- \nBob" not in text
    banners = {"---------- Forwarded message ---------": "-- Forwarded message --"}
    banners["-----Original Message-----"] = "--Original Message--"  # a dash is a token: the rules made short
    head = "\n".join(banners.get(line, line) for line in block.strip().split("\n"))
    assert text.endswith("\n\n## Forwarded message\n\n" + head + "\n\n" + forwarded)  # a passage apart


def test_an_outlook_reply_is_trimmed_where_its_forward_is_kept(tmp_path: Path) -> None:
    block = "\n\n________________________________\nFrom: Landlord <l@example.org>\nSent: Monday\nTo: Bob\n"
    block += "Subject: Lease\n\n"
    body = "Please review before Friday." + block + "The lease of Bernstrasse 12 ends in March."
    forward, _ = read_raw(tmp_path, bytes(mail("FW: Lease", body)))
    assert forward.text.endswith("Subject: Lease\n\nThe lease of Bernstrasse 12 ends in March.")
    reply, _ = read_raw(tmp_path, bytes(mail("RE: FW: Lease", body)))
    assert reply.text.endswith("Please review before Friday.")


LOTUS_FORWARD = (  # Lotus Notes' forward with no note of its own (the Enron sample's allen-p/sent/2.)
    "---------------------- Forwarded by Phillip K Allen/HOU/ECT on 12/13/2000 \n"
    "11:28 AM ---------------------------\n"
    "From: Sarah Novosel@ENRON on 12/13/2000 10:17 AM CST\n"
    "To: James D Steffes/NA/Enron@Enron, Joe Hartsoe/Corp/Enron@ENRON, Susan J \n"
    "Mara/NA/Enron@ENRON, Jeff Dasovich/NA/Enron@Enron, Richard \n"
    "Shapiro/NA/Enron@Enron, Steven J Kean/NA/Enron@Enron, Richard B \n"
    "Sanders/HOU/ECT@ECT, Stephanie Miller/Corp/Enron@ENRON, Christi L \n"
    "Nicolay/HOU/ECT@ECT, Mary Hain/HOU/ECT@ECT, pkaufma@enron.com, \n"
    "pallen@enron.com\n"
    "cc:  \n"
    "Subject: Enron Response to San Diego Request for Gas Price Caps\n\n"
    "Please review the attached draft Enron comments in response to the San Diego \n"
    "request for natural gas price caps.  The comments reflect Becky Cantrell's \n"
    "comments (which are reflected in red line).\n\nThanks\n\nSarah\n"
)


def test_a_forward_without_a_note_has_its_message_in_its_first_passage(tmp_path: Path, embedder: Any) -> None:
    """The first passage of a forward with no note used to be the header block alone (the forward's
    banner of dashes and its twelve wrapped recipients filled the next one): it won on the subject
    and said nothing. The forward's header is short now, and the passage holds the message."""
    doc, _ = read_raw(tmp_path, bytes(mail("Enron Response to San Diego Request for Gas Price Caps", LOTUS_FORWARD)))
    assert "\n-- Forwarded by Phillip K Allen/HOU/ECT on 12/13/2000 11:28 AM --\nFrom: Sarah" in doc.text
    to = "To: James D Steffes/NA/Enron@Enron, Joe Hartsoe/Corp/Enron@ENRON, Susan J Mara/NA/Enron@ENRON and 9 more"
    assert f"\n{to}\ncc:\nSubject: Enron Response" in doc.text
    first = chunk_text(doc.text, embedder.count_tokens)[0].text
    assert first.startswith("From: Ann <ann@example.com>\nTo: bob@example.com\nDate: 2024-06-03 10:00 UTC\n\n--")
    assert "Please review the attached draft Enron comments" in first


def test_a_forwarded_header_names_its_first_recipients_only_in_a_header_block() -> None:
    body = "FYI\n\n-----Original Message-----\nFrom: Carla\nSent: Monday\nTo: a@x.com; b@x.com;\n"
    body += "c@x.com; d@x.com\nSubject: Rota\n\nTo: the whole team, Ann, Bob, Dana and Eve.\nShifts start at 6."
    text = new_content(body, "FW: Rota")
    assert text.endswith(
        "## Forwarded message\n\n--Original Message--\nFrom: Carla\nSent: Monday\nTo: a@x.com, b@x.com, c@x.com"
        " and 1 more\nSubject: Rota\n\nTo: the whole team, Ann, Bob, Dana and Eve.\nShifts start at 6."
    )


def read_raw(tmp_path: Path, raw: bytes, **kw: Any) -> tuple[Document, list[Skipped]]:
    """The document of one raw message in an archive, and the skips its reading yielded."""
    (tmp_path / "a.eml").write_bytes(raw)
    items, _ = run(archive(tmp_path, **kw))
    return docs(items)["arch:a.eml"], [i for i in items if isinstance(i, Skipped)]


HEAD = b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: Rota\r\n"


def test_a_multipart_whose_boundary_matches_none_of_its_parts_keeps_its_body(tmp_path: Path) -> None:
    parts = (
        b"This is a multi-part message in MIME format.\r\n--real\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nThe night shift starts at 22:00 caf=C3=A9.\r\n"
        b"--real\r\nContent-Type: application/pdf; name=rota.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(make_pdf("Rota for December", []))
        + b"--real--\r\n"
    )
    doc, skipped = read_raw(tmp_path, HEAD + b'Content-Type: multipart/mixed; boundary="wrong"\r\n\r\n' + parts)
    assert "The night shift starts at 22:00 café." in doc.text and "Rota for December" in doc.text
    assert "Content-Type" not in doc.text and "--real" not in doc.text and not skipped

    doc, skipped = read_raw(tmp_path, HEAD + b"Content-Type: multipart/mixed\r\n\r\nNo parts, just text.\r\n--x--\r\n")
    assert doc.text.endswith("No parts, just text.") and not skipped  # no boundary at all: the payload is the body

    doc, skipped = read_raw(tmp_path, HEAD + b"Content-Type: multipart/mixed\r\n\r\n--x--\r\n")
    assert doc.title == "Rota" and "ann@example.com" in doc.text  # indexed by its headers, and the loss said
    assert [(s.id, s.failed) for s in skipped] == [("arch:a.eml#body", True)]
    assert "boundary matches none of its lines" in skipped[0].reason


def test_headers_in_unknown_charsets_or_raw_8bit_read_as_sent(tmp_path: Path) -> None:
    raw = (
        b"From: =?x-unknown?q?J=E9r=F4me?= <jerome@example.com>\r\n"
        b'To: "Doe, John" <john@example.com>, =?utf-8?q?Roe=2C_Ren=C3=A9e?= <renee@example.com>\r\n'
        b"Cc: Fran\xc3\xa7oise <fr@example.com>\r\n"
        b"Subject: =?us-ascii?q?Caf=E9?= menu \xe2\x80\x93 na\xc3\xafve =?utf-8?b?QUJDx?=\r\n\r\nSoup.\r\n"
    )
    doc, _ = read_raw(tmp_path, raw)
    assert doc.title == "Café menu – naïve =?utf-8?b?QUJDx?="  # the broken word as written, never U+FFFD
    assert "From: Jérôme <jerome@example.com>" in doc.text
    assert "To: Doe, John <john@example.com>, Roe, Renée <renee@example.com>" in doc.text
    assert "Cc: Françoise <fr@example.com>" in doc.text and "\ufffd" not in doc.text
    doc, _ = read_raw(tmp_path, b"From: ann@example.com\r\nSubject: r\xe9sum\xe9 \x80 draft\r\n\r\nCV.\r\n")
    assert doc.title == "résumé € draft"  # 8-bit bytes that are no UTF-8: Windows-1252


@pytest.mark.parametrize("label", ["iso-8859-1", "latin1", "us-ascii", "ISO-8859-1"])
def test_windows_1252_mail_labelled_latin_1_reads_as_windows_1252(tmp_path: Path, label: str) -> None:
    """Mail labelled Latin-1 or ASCII is mostly Windows-1252 (WHATWG Encoding Standard): its ’ “ ” – €
    are read as such, never as C1 control characters, and a short such body is text, not binary."""
    subject = f"Subject: =?{label}?Q?Budget_=80_it=92s_final?=\r\n".encode()
    plain = f"Content-Type: text/plain; charset={label}\r\nContent-Transfer-Encoding: ".encode()
    head = b"From: ann@example.com\r\nTo: bob@example.com\r\n" + subject
    doc, skipped = read_raw(tmp_path, head + plain + b"8bit\r\n\r\nIt\x92s \x80100 \x96 approved.\r\n")
    assert doc.title == "Budget € it’s final" and doc.text.endswith("It’s €100 – approved.") and not skipped
    doc, skipped = read_raw(
        tmp_path, HEAD + plain + b"quoted-printable\r\n\r\nWe=92ll pay =80250 for the =93okapi=94 badge.\r\n"
    )
    assert doc.text.endswith("We’ll pay €250 for the “okapi” badge.") and not skipped


@pytest.mark.parametrize("label", ["iso-8859-1", "windows-1252", "us-ascii"])
def test_utf8_mail_labelled_latin_1_reads_as_utf8(tmp_path: Path, label: str) -> None:
    """Bytes labelled Latin-1 that are valid UTF-8 with multi-byte characters are UTF-8 (probe29d N17)."""
    body = "Grüße aus München – das Budget für Jürgen ist freigegeben: 250 €."
    head = HEAD + f"Content-Type: text/plain; charset={label}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode()
    doc, _ = read_raw(tmp_path, head + body.encode() + b"\r\n")
    assert doc.text.endswith(body)


@pytest.mark.parametrize(
    ("label", "codec", "text"),
    [
        ("iso-8859-8-i", "iso8859_8", "הפגישה נדחתה ליום שישי."),
        ("x-mac-roman", "mac_roman", "La réunion est reportée à vendredi. Résumé joint."),
        ("x-euc-jp", "euc_jp", "会議は金曜日に延期されました。担当は佐藤さんです。"),
        ("x-sjis", "cp932", "会議は金曜日に延期されました。担当は佐藤さんです。"),
        ("ks_c_5601-1987", "cp949", "회의는 금요일로 연기되었습니다."),
        ("gb_2312-80", "gbk", "预算审批被推迟了。"),
    ],
)
def test_charset_labels_are_read_as_the_whatwg_table_says(tmp_path: Path, label: str, codec: str, text: str) -> None:
    """Labels mail clients and browsers know and Python's codecs do not (probe29d N16)."""
    head = HEAD + f"Content-Type: text/plain; charset={label}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode()
    doc, skipped = read_raw(tmp_path, head + text.encode(codec) + b"\r\n")
    assert doc.text.endswith(text) and not skipped


@pytest.mark.parametrize("charset", ["ISO-2022-JP", "Shift_JIS"])
def test_a_text_attachment_is_read_in_its_declared_charset(tmp_path: Path, charset: str) -> None:
    """A text attachment's `charset` parameter says how it is read, as a body's does (probe29d N11)."""
    notes = "会議は金曜日に延期されました。担当は佐藤さんです。倉庫の鍵は田中さんが持っています。"
    part = (
        f"--b\r\nContent-Type: text/plain; charset={charset}; name=minutes.txt\r\n"
        "Content-Disposition: attachment; filename=minutes.txt\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(notes.encode(charset))
    raw = HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
    doc, skipped = read_raw(tmp_path, raw + b"See attached.\r\n" + part + b"--b--\r\n")
    assert doc.text.endswith(f"## Attachment: minutes.txt\n\n{notes}") and not skipped


@pytest.mark.parametrize("label", ["zlib", "base64", "rot13", "undefined", "punycode", "unicode-escape"])
def test_a_charset_label_naming_no_text_encoding_is_read_by_detection(tmp_path: Path, label: str) -> None:
    """`charset=zlib` names a codec of Python's, but no text encoding: a body, a header word and a
    text attachment so labelled are read as if unlabelled, never an error (review29 F4)."""
    part = (
        f"--b\r\nContent-Type: text/plain; charset={label}; name=notes.txt\r\n"
        "Content-Disposition: attachment; filename=notes.txt\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Dock 7 opens at nächste Woche.\r\n"
    ).encode()
    body = f"--b\r\nContent-Type: text/plain; charset={label}\r\n\r\nThe quailfort rota.\r\n".encode()
    raw = (
        f"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: =?{label}?Q?Rota_caf=C3=A9?=\r\n".encode()
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + body
        + part
        + b"--b--\r\n"
    )
    doc, skipped = read_raw(tmp_path, raw)
    assert doc.title == "Rota café" and "The quailfort rota." in doc.text and not skipped
    assert doc.text.endswith("## Attachment: notes.txt\n\nDock 7 opens at nächste Woche.")
    assert header_text(f"=?{label}?Q?caf=C3=A9?=") == "café"
    assert extract.decode(f'<meta charset="{label}"><p>caf\xe9</p>'.encode("latin-1")).endswith("café</p>")
    assert extract.in_charset(b"hello", label) is None


def test_a_body_part_whose_base64_cannot_be_decoded_is_never_indexed_as_base64(tmp_path: Path) -> None:
    text = base64.b64encode("Bring the badge on Monday, please.".encode()).decode()
    one_too_many = HEAD + b"Content-Transfer-Encoding: base64\r\n\r\n" + text.rstrip("=").encode() + b"Qx\r\n"
    doc, skipped = read_raw(tmp_path, one_too_many)  # a length no decoder takes: its whole groups decoded
    assert "Bring the badge on Monday, please." in doc.text and text[:20] not in doc.text and not skipped

    prose = b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    prose += (
        b"This is not base64 at all, it is plain prose!\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee you.\r\n--b--\r\n"
    )
    doc, skipped = read_raw(tmp_path, HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + prose)
    assert doc.text.endswith("See you.") and "plain prose" not in doc.text  # the other part stays
    assert [(s.id, s.failed, s.title) for s in skipped] == [("arch:a.eml#body", True, "Rota")]
    assert "base64 is corrupt" in skipped[0].reason

    binary = base64.b64encode(bytes(range(256)) * 4)  # valid base64 of bytes that are no text
    raw = HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + binary + b"\r\n"
    doc, skipped = read_raw(tmp_path, raw)
    assert "\x01" not in doc.text and [s.id for s in skipped] == ["arch:a.eml#body"]
    assert "binary bytes" in skipped[0].reason


def test_a_backslash_in_a_header_stays_a_backslash() -> None:
    assert header_text(r"Use \u003cb\u003e =?utf-8?q?caf=C3=A9?= C:\temp") == r"Use \u003cb\u003e café C:\temp"


def test_a_huge_broken_header_is_decoded_up_to_its_cap() -> None:
    broken = " ".join(f"=?x-bogus?Q?w{n}" for n in range(40_000))  # unterminated words: quadratic to decode
    text = header_text(broken)
    assert text.startswith("=?x-bogus?Q?w0") and len(text) <= MAX_HEADER_CHARS


def test_nested_multiparts_with_wrong_boundaries_are_split_again_a_bounded_number_of_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"Content-Type: text/plain\r\n\r\nThe innermost rota.\r\n"
    for depth in range(10):  # each level declares a boundary its part does not use
        body = (
            f'Content-Type: multipart/mixed; boundary="declared{depth}"\r\n\r\n--used{depth}\r\n'.encode()
            + body
            + f"--used{depth}--\r\n".encode()
        )
    calls: list[int] = []
    real = mail_module.rebounded
    monkeypatch.setattr(mail_module, "rebounded", lambda part: calls.append(1) or real(part))
    doc, _ = read_raw(tmp_path, HEAD + body)
    assert "The innermost rota." in doc.text and len(calls) == mail_module.MAX_REBOUNDS


def test_a_date_past_the_last_day_python_knows_is_no_date(tmp_path: Path) -> None:
    raw = HEAD + b"Date: Fri, 31 Dec 9999 23:59:59 -2359\r\n\r\nHello."
    doc, skipped = read_raw(tmp_path, raw)  # once: OverflowError, and the archive's every run failed
    assert "Hello." in doc.text and "9999" not in doc.text and not skipped
    assert doc.created_at is not None and abs(doc.created_at.timestamp() - (tmp_path / "a.eml").stat().st_mtime) < 1e-3


def test_a_body_over_max_body_bytes_is_cut_there_and_says_so(tmp_path: Path) -> None:
    body = "".join(f"Line {n} of the minutes.\n" for n in range(400))
    doc, skipped = read_raw(tmp_path, bytes(mail("Minutes", body)), max_body_bytes=1000)
    assert "Line 0 of the minutes." in doc.text and "Line 399" not in doc.text
    assert len(doc.text.encode()) < 1000 + 200  # the header block, then 1000 bytes of body
    assert [(s.id, s.failed) for s in skipped] == [("arch:a.eml#body", False)]
    assert skipped[0].reason.startswith("body truncated at 1000 bytes of its ")
    doc, skipped = read_raw(tmp_path, bytes(mail("Minutes", body)))  # the default holds it whole
    assert "Line 399 of the minutes." in doc.text and not skipped


def test_a_message_over_max_file_bytes_is_skipped_unread_until_the_cap_admits_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "small.eml").write_bytes(bytes(mail("small", "The small one.")))
    (tmp_path / "big.eml").write_bytes(bytes(mail("big", "The big one.\n" + "padding line\n" * 1000)))
    box = mailbox.mbox(tmp_path / "archive.mbox")
    box.add(mail("boxed small", "A small boxed note."))
    box.add(mail("boxed big", "A big boxed note.\n" + "padding line\n" * 1000))
    box.close()
    big_size = (tmp_path / "big.eml").stat().st_size
    read: list[str] = []  # what was read whole: a file's path, an mbox message's bytes
    path_read, box_read = mail_module._regular_bytes, mail_module._mbox_bytes
    monkeypatch.setattr(mail_module, "_regular_bytes", lambda path: read.append(path.name) or path_read(path))
    monkeypatch.setattr(mail_module, "_mbox_bytes", lambda *a: read.append(f"#{len(read)}") or box_read(*a))

    items, state = run(archive(tmp_path, max_file_bytes=5000))
    boxed = mbox_ids(tmp_path / "archive.mbox")
    assert set(docs(items)) == {"arch:small.eml", boxed[0]}
    skipped = {s.id: s for s in items if isinstance(s, Skipped)}
    assert set(skipped) == {"arch:big.eml", boxed[1]} and not any(s.failed for s in skipped.values())
    assert skipped["arch:big.eml"].reason == f"{big_size} bytes, larger than max_file_bytes (5000): not read"
    assert sorted(read) == ["#0", "small.eml"]  # neither big message was read into memory

    read.clear()
    items, _ = run(archive(tmp_path, max_file_bytes=5000), state)  # unchanged: nothing read again
    assert not docs(items) and not read
    items, state = run(archive(tmp_path, max_file_bytes=50_000), state)  # a larger cap admits them
    assert set(docs(items)) >= {"arch:big.eml", boxed[1]}
    assert not [i for i in items if isinstance(i, Skipped)]

    (tmp_path / "big.eml").write_bytes(bytes(mail("big", "Grown.\n" + "padding line\n" * 5000)))
    items, _ = run(archive(tmp_path, max_file_bytes=50_000), state)  # grown past the cap: out of the index
    assert [(type(i).__name__, i.id) for i in items if isinstance(i, (Skipped, Deletion, Document))] == [
        ("Skipped", "arch:big.eml"),
        ("Deletion", "arch:big.eml"),
    ]


def test_max_file_bytes_below_one_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    from inlet.config import load_config
    from inlet.errors import ConfigError

    config = tmp_path / "c.toml"
    config.write_text(f'[[sources]]\nname = "m"\ntype = "mail_archive"\npath = "{tmp_path.as_posix()}"\n')
    assert load_config(config).sources[0].max_file_bytes == 20_000_000  # type: ignore[attr-defined]
    config.write_text(config.read_text() + "max_file_bytes = 0\n")
    with pytest.raises(ConfigError, match="key 'max_file_bytes': Input should be greater than or equal to 1"):
        load_config(config)


def test_a_message_over_max_file_bytes_is_listed_by_inlet_status(tmp_path: Path, text_hash_embedder: Any) -> None:
    from click.testing import CliRunner

    from inlet.cli import cli
    from inlet.config import load_config
    from inlet.index.store import Index
    from inlet.storage.sqlite.state import SqliteState
    from inlet.sync.engine import Engine

    (tmp_path / "mail").mkdir()
    (tmp_path / "mail/big.eml").write_bytes(bytes(mail("big", "padding line\n" * 1000)))
    config = tmp_path / "config.toml"
    config.write_text(
        '[index]\npath = "store"\n\n[[sources]]\nname = "old-mail"\ntype = "mail_archive"\npath = "mail"\n'
        "max_file_bytes = 5000\n"
    )
    settings = load_config(config)
    with Index(settings.index, embedder=text_hash_embedder) as index:
        state = SqliteState(settings.index.path / "state.db")
        assert Engine(settings, index, state, env={}).run("old-mail", "backfill").outcome == "ok"
        state.close()
    shown = CliRunner().invoke(cli, ["status", "old-mail", "--config", str(config)])
    size = (tmp_path / "mail/big.eml").stat().st_size
    assert f"{size} bytes, larger than max_file_bytes (5000): not read" in shown.output, shown.output


def big_html_mail(paragraphs: int) -> bytes:
    """An HTML mail of styled paragraphs (each about 230 characters of HTML for 40 of text)."""
    style = 'style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#333333;margin:0 0 8px 0"'
    html = "".join(f"<p {style}>Paragraph {n} &amp; <span {style}>more</span> notes.</p>\n" for n in range(paragraphs))
    msg = mail("Newsletter", "")
    msg.set_content(f"<html><body>{html}</body></html>", subtype="html")
    return bytes(msg)


def test_a_huge_html_body_is_converted_from_a_bounded_prefix_a_small_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inlet.connectors import mail_text

    given: list[int] = []  # the length of each HTML the converter was handed
    convert = mail_text.html_to_text
    monkeypatch.setattr(mail_text, "html_to_text", lambda html: given.append(len(html)) or convert(html))
    doc, skipped = read_raw(tmp_path, big_html_mail(2000), max_body_bytes=2000)  # 460 KB of HTML
    assert given and max(given) <= mail_module.HTML_PER_TEXT_BYTE * 2000
    body = doc.text.split("Date: 2024-06-03 10:00 UTC\n\n", 1)[1]
    assert body.startswith("Paragraph 0 & more notes.") and len(body.encode()) <= 2000
    assert "<" not in body and "style=" not in body and "&am" not in body  # no markup, no entity
    assert [(s.id, s.failed) for s in skipped] == [("arch:a.eml#body", False)]
    assert "characters of HTML (max_body_bytes)" in skipped[0].reason

    given.clear()
    small = "<!-- a comment --><style>p {color: red}</style><p>Short &amp; <b>sweet</b>.</p>"
    small += '<img src="data:image/png;base64,iVBORw0KGgo="><div style="display:none">preheader</div>'
    msg = mail("Short", "")
    msg.set_content(small, subtype="html")
    doc, skipped = read_raw(tmp_path, bytes(msg))
    assert given == [len(small) + 1]  # handed whole (with the line end the message adds)
    assert doc.text.endswith("\n\n" + mail_text.body_text(small, None)) and not skipped


def test_an_html_prefix_is_cut_outside_tags_entities_and_what_never_becomes_text() -> None:
    from inlet.connectors import extract

    html = "<p>one &amp; two</p>" * 10
    assert extract.html_prefix(html, len(html)) == (html, False)  # at the limit: handed as it is
    assert extract.html_prefix("<p>one &amp; two</p><p>three</p>", 22) == ("<p>one &amp; two</p>", True)  # no <p
    assert extract.html_prefix("<p>one &amp; two</p><p>three</p>", 26) == ("<p>one &amp; two</p><p>thr", True)
    assert extract.html_prefix("<p>one &amp; two</p>", 10) == ("<p>one ", True)  # not into the entity
    lean = "<!-- " + "c" * 100 + ' --><style>x{}</style><img src="data:image/png;base64,' + "A" * 100 + '"><p>hi</p>'
    assert extract.html_prefix(lean, 60) == ('  <img src=""><p>hi</p>', False)  # only what becomes text counted
    hidden = '<div style="display:none">' + "secret " * 20 + "</div><p>" + "shown " * 20 + "</p>"
    assert "secret" not in extract.html_prefix(hidden, 100)[0]


def test_an_html_prefix_never_ends_in_part_of_a_tag_quoted_or_a_cdata_section() -> None:
    from inlet.connectors import extract

    tails = ["<img alt='>' src=x onerror=alert(3)>" * 100, "<![CDATA[" + "<img src=x onerror=alert(1)>" * 100 + "]]>"]
    for tail in tails:
        for n in range(0, 1100, 7):  # the cut lands everywhere in the tags
            html = "<p>intro" + "x" * n + "</p>" + tail
            text = extract.html_to_text(extract.html_prefix(html, 1024)[0])
            assert text.startswith("intro") and ("intro" + "x" * n).startswith(text), (n, text[-60:])
    assert extract.html_to_text("<p>a</p>" + tails[1]) == "a"  # a CDATA section is no text


def test_html_text_is_made_in_linear_time_whatever_its_stray_brackets() -> None:
    from inlet.connectors import extract

    assert (
        extract.html_to_text("<p>x <a</p>") == "x <a"
        and extract.html_to_text("a < b, <p>c</p> [d") == "a < b,\n\nc\n\n[d"
    )
    assert extract.html_to_text("<p a='<b>'>one</p><!-- <p>two</p> -->") == "one"  # quoted `<`, a comment: markup
    # The parser, or a pattern, once read to the end from each of these (256 KB of "<a" took 75 s,
    # of "[" 90 s; now about 2 s, a figure for the closing note, not a timed test): each is text.
    for unit in ("<a", "<![CDATA[", "[", "<!--"):
        assert extract.html_to_text(unit * (16 * 1024 // len(unit))).startswith(unit.lstrip("[")[:1] or "[")


SUBJECTS = {  # subject as sent: the title it gives (markup gone; text that only looks like it kept)
    "<img src=x onerror=alert(1)>": "(no subject)",
    "<b>Q3</b> plan": "Q3 plan",
    '<a href="https://x.example/q">Q&amp;A</a> <i>now</i><br/>please': "Q&A now please",
    "<script>alert(1)</script>Budget<!-- x -->": "Budget",
    "a < b and c > d": "a < b and c > d",
    "<TICKET-12> printer &amp; scanner": "<TICKET-12> printer &amp; scanner",
    "Re: the <div> alignment bug": "Re: the <div> alignment bug",
    "&lt;script&gt;alert(1)&lt;/script&gt; <b>hello</b>": "hello",  # entities that spell markup are markup
    "<<b></b>img src=x onerror=alert(2)> subj": "subj",  # and so is what dropping markup joins
    "<svg/onload=alert(1)> <x-foo onclick=alert(1)>hi</x-foo>": "hi",  # "/" parts attributes; custom elements
}


def test_a_subject_is_plain_text_for_every_mail_connector(tmp_path: Path) -> None:
    from inlet.connectors.outlook import graph_message

    for subject, title in SUBJECTS.items():
        encoded = base64.b64encode(subject.encode())
        doc, _ = read_raw(tmp_path, b"From: ann@example.com\r\nSubject: =?utf-8?b?" + encoded + b"?=\r\n\r\nHi.")
        assert doc.title == title, subject  # mail_archive, and Gmail (the same RFC 822 parsing)
        body = {"contentType": "text", "content": "Hi."}
        outlook = graph_message({"id": "m1", "subject": subject, "body": body}, "", "")
        assert (outlook.subject or "(no subject)") == title, subject


@pytest.mark.timeout(60)  # a pipe in the folder once held the run for ever, waiting for a writer
def test_a_pipe_in_the_folder_is_not_read_nor_waited_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "1.").write_text("From: a@x.org\nTo: b@x.org\nSubject: hi\nMessage-ID: <1@x>\n\nhello there\n")
    os.mkfifo(tmp_path / "2.")
    with caplog.at_level("INFO", logger="inlet.connectors.mail"):
        items, state = run(archive(tmp_path))
    assert list(docs(items)) == ["arch:1."] and set(state["files"]) == {"1."}
    assert "2. is not a regular file; not read" in caplog.text
    conn = archive(tmp_path)
    assert conn._head("2.", had=True)[0] is None  # one put in a file's place after the scan: no mail, no wait
    with pytest.raises(OSError, match="not a regular file"):
        mail_module._regular_bytes(tmp_path / "2.")


def good_eml(n: int) -> bytes:
    return (
        f"From: Bob <bob@example.com>\nTo: Alice <alice@example.com>\nSubject: Okapi review {n}\n"
        f"Date: Mon, 2 Mar 2026 10:00:00 +0000\nMessage-ID: <good{n}@example.com>\n\n"
        f"The okapi review number {n} is on Thursday.\n"
    ).encode()


def test_a_file_named_as_mail_that_does_not_read_as_mail_is_a_failed_skip_and_keeps_its_message(
    tmp_path: Path,
) -> None:
    """Damaged bytes under a message's name are an error, every run until they read; the message
    indexed from the file before is kept (not deleted, and vouched for to a prune)."""
    for n in (1, 2):
        (tmp_path / f"msg{n}.eml").write_bytes(good_eml(n))
    (tmp_path / "damaged.eml").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "notes.txt").write_text("not mail, not named as mail: left out")
    conn = archive(tmp_path)
    items, state = run(conn)
    assert set(docs(items)) == {"arch:msg1.eml", "arch:msg2.eml"}
    (skip,) = [i for i in items if isinstance(i, Skipped)]
    assert (skip.id, skip.failed, skip.title) == ("arch:damaged.eml", True, "damaged.eml")
    assert "no mail headers" in skip.reason
    msg2 = tmp_path / "msg2.eml"
    msg2.write_bytes(b"\0" * len(good_eml(2)))  # overwritten in place: damaged
    for _ in range(2):  # read again, and reported, by every run
        items, state = run(conn, state)
        assert not [i for i in items if isinstance(i, (Deletion, Document))]
        assert sorted((s.id, s.failed) for s in items if isinstance(s, Skipped)) == [
            ("arch:damaged.eml", True),
            ("arch:msg2.eml", True),
        ]
    assert {"arch:msg1.eml", "arch:msg2.eml"} <= set(conn.live_ids())
    msg2.write_bytes(good_eml(2).replace(b"Thursday", b"Friday"))
    items, _ = run(conn, state)
    assert list(docs(items)) == ["arch:msg2.eml"] and "Friday" in docs(items)["arch:msg2.eml"].text


def test_a_damaged_mbox_keeps_its_messages_by_their_ids_prefix(tmp_path: Path) -> None:
    box = tmp_path / "Inbox"  # as Thunderbird names it: no suffix
    notes_mbox(box).close()
    conn = archive(tmp_path)
    _, state = run(conn)
    box.write_bytes(b"\xff" * 3000)
    items, _ = run(conn, state)
    assert not [i for i in items if isinstance(i, (Deletion, Document))]
    (skip,) = [i for i in items if isinstance(i, Skipped)]
    assert (skip.id, skip.folder, skip.failed, skip.title) == ("arch:Inbox#", True, True, "Inbox")
    live = list(conn.live_ids())
    assert all(f"arch:Inbox#{n}".startswith(tuple(live)) for n in range(3))


class _NoPause(MailArchiveConnector):
    settle_seconds = 0.0  # what a file caught in the middle of a save waits before it is read again


class _RewrittenWhileRead(_NoPause):
    """Reads `victim` first in the middle of a rewrite by a mail client: truncated, read, then written."""

    victim = "archive.mbox"
    final = b""
    caught = 0

    def _read_head(self, path: Path) -> bytes | None:
        if path.name != self.victim or self.caught:
            return super()._read_head(path)
        self.caught += 1
        path.write_bytes(b"")  # the client truncates ...
        data = super()._read_head(path)
        path.write_bytes(self.final)  # ... and writes the mbox again right after this read
        return data


class _NeverFinished(_RewrittenWhileRead):
    """`victim` reads empty at every read and changes at every read (a rewrite that never ends)."""

    def _read_head(self, path: Path) -> bytes | None:
        if path.name != self.victim:
            return super()._read_head(path)
        self.caught += 1
        path.write_bytes(b"")
        data = _NoPause._read_head(self, path)
        path.write_bytes(b"x" * self.caught)
        return data


def test_an_mbox_caught_empty_while_rewritten_keeps_its_messages(tmp_path: Path) -> None:
    box = tmp_path / "archive.mbox"
    notes_mbox(box).close()
    whole = box.read_bytes()
    config = MailArchiveConfig(name="arch", type="mail_archive", path=tmp_path)
    _, state = run(archive(tmp_path))
    box.write_bytes(whole + b"\n")  # changed since: read by the next run, caught in the middle of a rewrite
    rewritten = _RewrittenWhileRead(config)
    rewritten.final = whole
    items, state = run(rewritten, state)
    assert rewritten.caught == 1 and not [i for i in items if isinstance(i, (Deletion, Skipped))]
    ids = mbox_ids(box)
    assert set(docs(items)) == set(ids) and len(ids) == 3

    box.write_bytes(whole + b"\n\n")
    items, after = run(_NeverFinished(config), state)
    assert not [i for i in items if isinstance(i, (Deletion, Document))]
    (skip,) = [i for i in items if isinstance(i, Skipped)]
    assert skip.id == "arch:archive.mbox#" and not skip.failed and "kept as it was" in skip.reason
    assert after["files"]["archive.mbox"] == state["files"]["archive.mbox"]  # read again by the next run

    box.write_bytes(b"")  # emptied on purpose: empty at two reads a pause apart
    items, state = run(_NoPause(config), after)
    assert {i.id for i in items if isinstance(i, Deletion)} == set(ids)
    (skip,) = [i for i in items if isinstance(i, Skipped)]
    assert skip.id == "arch:archive.mbox#" and not skip.failed and "its 3 messages leave the index" in skip.reason
    assert LivePrefix("arch:archive.mbox#") in list(archive(tmp_path).live_ids())  # a prune leaves it to a sync


def test_a_damaged_message_makes_every_run_partial_and_loses_nothing(tmp_path: Path, text_hash_embedder: Any) -> None:
    """Through the engine: the damaged file's message stays indexed through a sync, a prune and a
    full pass, and every run is `partial` until it reads."""
    from inlet.config import IndexConfig, Settings
    from inlet.index.store import Index
    from inlet.storage.sqlite.state import SqliteState
    from inlet.sync.engine import Engine

    folder = tmp_path / "mail"
    (folder / "archive/cur").mkdir(parents=True)
    for n in (1, 2):
        (folder / f"msg{n}.eml").write_bytes(good_eml(n))
    maildir = folder / "archive/cur/1700000000.x:2,S"
    maildir.write_bytes(good_eml(3))
    source = MailArchiveConfig(name="box", type="mail_archive", path=folder)
    settings = Settings(index=IndexConfig(path=tmp_path / "store"), sources=[source])
    with Index(settings.index, embedder=text_hash_embedder) as index:
        state = SqliteState(tmp_path / "store" / "state.db")
        engine = Engine(settings, index, state, env={})
        assert engine.run("box", "backfill").upserted == 3
        every = set(index.catalog.source_doc_ids("box"))
        (folder / "msg2.eml").write_bytes(b"\0" * 300)
        maildir.write_bytes(b"\0" * 300)
        for kind in ("sync", "sync", "prune", "backfill"):
            result = engine.prune("box") if kind == "prune" else engine.run("box", kind)
            assert (result.outcome, result.deleted) == ("ok" if kind == "prune" else "partial", 0), kind
            assert result.errors == (0 if kind == "prune" else 2), kind
            assert set(index.catalog.source_doc_ids("box")) == every, kind
        state.close()


def test_a_message_that_cannot_be_parsed_is_read_again_every_run(tmp_path: Path, monkeypatch: Any) -> None:
    for n in (1, 2):
        (tmp_path / f"msg{n}.eml").write_bytes(good_eml(n))
    conn = archive(tmp_path)
    _, state = run(conn)
    (tmp_path / "msg2.eml").write_bytes(good_eml(2).replace(b"Thursday", b"Friday"))
    parse = mail_module.rfc822_message

    def fails_on_msg2(native: str, raw: bytes, **kw: Any) -> Any:
        if native == "msg2.eml":
            raise ValueError("a parser bug")
        return parse(native, raw, **kw)

    monkeypatch.setattr(mail_module, "rfc822_message", fails_on_msg2)
    for _ in range(2):
        items, state = run(conn, state)
        assert [(s.id, s.failed) for s in items if isinstance(s, Skipped)] == [("arch:msg2.eml", True)]
        assert not [i for i in items if isinstance(i, (Deletion, Document))]
    monkeypatch.setattr(mail_module, "rfc822_message", parse)
    items, state = run(conn, state)
    assert list(docs(items)) == ["arch:msg2.eml"] and "Friday" in docs(items)["arch:msg2.eml"].text
    items, _ = run(conn, state)
    assert not docs(items) and not [i for i in items if isinstance(i, Skipped)]
