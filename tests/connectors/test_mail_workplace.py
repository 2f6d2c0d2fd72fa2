"""Mail and text as workplaces hold them (probe33f): Japanese mail with Windows' characters,
Maildir++ folders, forwards with attachments, saved messages with a byte order mark, padded
quoted-printable."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from inlet.connectors.extract import decode, extract_text, html_to_text
from inlet.connectors.mail import MAX_NESTED_MAIL, MailArchiveConfig, MailArchiveConnector
from inlet.connectors.mail_parts import calendar_text, recurrence
from inlet.connectors.model import Checkpoint, Document, Skipped

NEC_TEXT = "お世話になっております。\n①議題：㈱かもめ商事との契約\n②Ⅲ期の予算は承認されました。纊髙\n"


def archive(path: Path, **kw: Any) -> MailArchiveConnector:
    return MailArchiveConnector(MailArchiveConfig(name="arch", type="mail_archive", path=path, **kw))


def run(conn: MailArchiveConnector) -> list[Any]:
    items = list(conn.load(None))
    assert isinstance(items[-1], Checkpoint)
    return items


def docs(items: list[Any]) -> dict[str, Document]:
    return {i.id: i for i in items if isinstance(i, Document)}


def _jis_codes(text: str) -> list[tuple[int, int] | int]:
    """Each character of `text` as Windows holds it: a JIS X 0208 code (row and cell bytes, NEC's
    row 13 and IBM's rows 89-92 included) or an ASCII byte."""
    out: list[tuple[int, int] | int] = []
    for char in text:
        raw = char.encode("cp932")
        if len(raw) == 1:
            out.append(raw[0])
            continue
        lead, trail = raw
        lead -= 0x40 if lead >= 0xE0 else 0
        row = (lead - 0x81) * 2 + 0x21
        if trail >= 0x9F:
            row, cell = row + 1, trail - 0x7E
        else:
            cell = trail - (0x1F if trail < 0x80 else 0x20)
        out.append((row, cell))
    return out


def iso2022_jp(text: str) -> bytes:
    """`text` as Outlook and Windows send it labelled ISO-2022-JP (CP50220: NEC's characters too)."""
    out, jis = bytearray(), False
    for code in _jis_codes(text):
        if isinstance(code, int):
            out += b"\x1b(B" if jis else b""
            out.append(code)
            jis = False
        else:
            out += b"" if jis else b"\x1b$B"
            out += bytes(code)
            jis = True
    return bytes(out + (b"\x1b(B" if jis else b""))


def euc_jp(text: str) -> bytes:
    """`text` in EUC-JP as Windows writes it (CP51932: NEC's characters too)."""
    return b"".join(bytes([c]) if isinstance(c, int) else bytes([c[0] | 0x80, c[1] | 0x80]) for c in _jis_codes(text))


def test_iso_2022_jp_and_euc_jp_with_nec_characters_are_read_as_windows_writes_them() -> None:
    """Python's codecs refuse ①, ㈱, Ⅲ under these labels: the whole text was read as 7-bit bytes
    or mojibake. Labelled or not, it reads as a browser shows it."""
    assert extract_text(iso2022_jp(NEC_TEXT), "memo.txt") == NEC_TEXT
    assert extract_text(iso2022_jp(NEC_TEXT), "memo.txt", "text/plain; charset=ISO-2022-JP") == NEC_TEXT
    assert extract_text(euc_jp(NEC_TEXT), "memo.txt", "text/plain; charset=EUC-JP") == NEC_TEXT
    assert decode(euc_jp(NEC_TEXT)) == NEC_TEXT  # unlabelled: detected
    assert decode(euc_jp("倉庫の鍵は田中さんが持っています。")) == "倉庫の鍵は田中さんが持っています。"


def test_a_japanese_mail_with_nec_characters_reads_in_body_and_subject(tmp_path: Path) -> None:
    subject = "=?ISO-2022-JP?B?" + base64.b64encode(iso2022_jp("①かもめ契約の件")).decode() + "?="
    head = (
        "From: tanaka@example.jp\r\nTo: suzuki@example.jp\r\nSubject: " + subject + "\r\n"
        "Date: Mon, 02 Nov 2026 10:00:00 +0900\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    )
    (tmp_path / "kamome.eml").write_bytes(head.encode() + iso2022_jp(NEC_TEXT.replace("\n", "\r\n")))
    doc = docs(run(archive(tmp_path)))["arch:kamome.eml"]
    assert doc.title == "①かもめ契約の件"
    assert doc.text.endswith(NEC_TEXT.strip())


def message(subject: str, body: str, extra: str = "") -> bytes:
    head = f"From: bob@example.com\nTo: alice@example.com\nSubject: {subject}\nDate: Mon, 02 Nov 2026 10:00:00 +0000\n"
    return f"{head}{extra}\n{body}\n".encode()


def test_every_folder_of_a_maildir_plus_mailbox_is_read(tmp_path: Path) -> None:
    """Dovecot's and Courier's layout: the INBOX's cur/new/tmp, each other folder a hidden folder
    beside them. Only the INBOX was read, and the run said nothing of the rest."""
    alice = tmp_path / "alice"
    for box in ("", ".Sent", ".Archive.2025"):
        for sub in ("cur", "new", "tmp"):
            (alice / box / sub).mkdir(parents=True)
    (alice / "cur/1793613600.M1P1.host:2,S").write_bytes(message("inbox mail", "inboxword limpkin"))
    (alice / ".Sent/cur/1793613601.M1P1.host:2,S").write_bytes(message("sent mail", "limpkin offer accepted"))
    (alice / ".Archive.2025/new/1793613602.M1P1.host").write_bytes(message("archived", "limpkin contract 2025"))
    (alice / ".Sent/maildirfolder").write_bytes(b"")
    (tmp_path / ".git/objects").mkdir(parents=True)  # any other hidden folder is still left out
    (tmp_path / ".git/objects/note.eml").write_bytes(message("not mail of the archive", "x"))
    got = docs(run(archive(tmp_path)))
    assert set(got) == {
        "arch:alice/1793613600.M1P1.host",
        "arch:alice/.Sent/1793613601.M1P1.host",
        "arch:alice/.Archive.2025/1793613602.M1P1.host",
    }
    folders = {d.title: d.metadata["folder"] for d in got.values()}
    assert folders == {"inbox mail": "alice", "sent mail": "alice/Sent", "archived": "alice/Archive/2025"}


@pytest.mark.parametrize("lead", [b"\xef\xbb\xbf", b"\n", b"\r\n", b"\xef\xbb\xbf\r\n"])
def test_a_message_saved_with_a_byte_order_mark_or_a_blank_line_first_reads_as_sent(
    tmp_path: Path, lead: bytes
) -> None:
    """Was "(no subject)", by nobody, dated by the file, its headers as body text."""
    (tmp_path / "saved.eml").write_bytes(lead + message("Kittiwake budget", "The kittiwake budget is approved."))
    doc = docs(run(archive(tmp_path)))["arch:saved.eml"]
    assert (doc.title, doc.author) == ("Kittiwake budget", "bob@example.com")
    assert doc.created_at is not None and doc.created_at.isoformat().startswith("2026-11-02")
    assert "Subject:" not in doc.text and doc.text.endswith("The kittiwake budget is approved.")


def test_a_quoted_printable_soft_break_padded_by_a_gateway_is_still_a_soft_break(tmp_path: Path) -> None:
    """RFC 2045 §6.7: white space at a quoted-printable line's end is deleted ("sand= " + CRLF)."""
    head = "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n"
    body = "The sand= \r\npiper contract and the wag=\t\r\ntail budget, caf=C3=A9 =3D ok.  \r\nNext line."
    (tmp_path / "qp.eml").write_bytes(message("qp", body, head).replace(b"\n", b"\r\n").replace(b"\r\r", b"\r"))
    text = docs(run(archive(tmp_path)))["arch:qp.eml"].text
    assert text.endswith("The sandpiper contract and the wagtail budget, café = ok.\nNext line.")


def test_a_mail_forwarded_as_attachment_keeps_its_own_attachments_and_forwards(tmp_path: Path) -> None:
    """A forward as attachment of a mail that carries a file and a forwarded approval: the file and
    the approval were in no document, and the run said nothing."""
    approval = EmailMessage()
    approval["From"], approval["Subject"] = "Boss <boss@seller.example>", "approval"
    approval.set_content("The razorbill discount is capped at 7 percent.")
    approval.add_attachment(b"terms: net 30 for razorbill", maintype="text", subtype="plain", filename="terms.txt")
    inner = EmailMessage()
    inner["From"], inner["Subject"] = "Dave Seller <dave@seller.example>", "contract for the razorbill deal"
    inner["Date"] = "Sun, 01 Nov 2026 09:00:00 +0000"
    inner.set_content("Alice, the signed contract is attached.")
    inner.add_attachment(
        b"The razorbill price is 4.2 million.", maintype="text", subtype="plain", filename="contract.txt"
    )
    inner.add_attachment(approval)
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "alice@example.com", "bob@example.com", "Fwd: razorbill"
    outer.set_content("Bob, see the mail below, with the contract.")
    outer.add_attachment(inner, filename="contract mail.eml")
    (tmp_path / "outer.eml").write_bytes(bytes(outer))
    items = run(archive(tmp_path))
    text = docs(items)["arch:outer.eml"].text
    assert "From: Dave Seller <dave@seller.example>" in text
    assert "## Attachment: contract mail.eml / contract.txt\n\nThe razorbill price is 4.2 million." in text
    assert "discount is capped at 7 percent" in text
    assert "contract mail.eml / approval.eml / terms.txt\n\nterms: net 30 for razorbill" in text
    assert not [i for i in items if isinstance(i, Skipped)]


def test_mails_attached_too_deep_are_named_as_not_read(tmp_path: Path) -> None:
    message_now = EmailMessage()
    message_now["From"], message_now["Subject"] = "a@example.com", "level 0"
    message_now.set_content("deepest")
    message_now.add_attachment(b"never read", maintype="text", subtype="plain", filename="deep.txt")
    for level in range(1, MAX_NESTED_MAIL + 2):
        outer = EmailMessage()
        outer["From"], outer["Subject"] = "a@example.com", f"level {level}"
        outer.set_content(f"text of level {level}")
        outer.add_attachment(message_now)
        message_now = outer
    (tmp_path / "deep.eml").write_bytes(bytes(message_now))
    items = run(archive(tmp_path))
    assert "never read" not in docs(items)["arch:deep.eml"].text
    assert [i.reason for i in items if isinstance(i, Skipped)] == [
        f"attachments of a mail attached {MAX_NESTED_MAIL} mails deep: not read"
    ]


def test_html5_blocks_keep_their_words_apart_and_a_template_is_not_text() -> None:
    """HTML5's sectioning and disclosure elements glued their words ("HomeShearwater")."""
    html = (
        "<header>Acme intranet</header><nav>Home</nav><main><article><section>Shearwater done.</section>"
        "<aside>Owner: platform</aside><details><summary>Risks</summary>Vendor delay.</details>"
        "<figure><figcaption>Figure 1</figcaption></figure></article></main><footer>Confidential</footer>"
        "<noscript>Enable scripts</noscript><template>TEMPLATEWORD</template><p>The <b>end</b></p>"
    )
    assert html_to_text(html).split("\n\n") == [
        "Acme intranet",
        "Home",
        "Shearwater done.",
        "Owner: platform",
        "Risks",
        "Vendor delay.",
        "Figure 1",
        "Confidential",
        "Enable scripts",
        "The end",
    ]


def test_an_invitations_recurrence_reads_as_words_and_a_reply_keeps_its_answer_and_comment() -> None:
    """gmail.md: an invitation is read as its events, never as iCalendar lines (probe33f F15)."""
    invite = (
        "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Scoter review\r\n"
        "DTSTART:20261110T100000Z\r\nRRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=10\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert "Repeats: every week on Tuesday, 10 times" in calendar_text(invite)
    assert recurrence("FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR;UNTIL=20270301") == (
        "every 2 months on the last Friday, until 2027-03-01"
    )
    reply = (
        "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nSUMMARY:Scoter review\r\nDTSTART:20261110T100000Z\r\n"
        "ATTENDEE;PARTSTAT=DECLINED;CN=Bob:mailto:bob@x.example\r\n"
        "COMMENT:Declining\\, I am on leave until December\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert calendar_text(reply).splitlines()[2:] == [
        "Reply: Bob <bob@x.example> declined",
        "Comment: Declining, I am on leave until December",
    ]
