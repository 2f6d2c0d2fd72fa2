"""What a mail's document holds of odd but real mail: alternatives that differ, invitations, saved
mail attached as a file, flowed text, Outlook's plain-text marks and inline answers, S/MIME,
undated mail, unescaped "From " lines in an mbox, and Outlook files in an archive."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from inlet.connectors.mail import MailArchiveConfig, MailArchiveConnector
from inlet.connectors import mail_text
from inlet.connectors.mail_parts import calendar_text, signed_content
from inlet.connectors.model import Checkpoint, Deletion, Document, Skipped

HEAD = "From: Bob <bob@example.com>\r\nTo: Alice <alice@example.com>\r\nDate: Mon, 7 Dec 2026 09:00:00 +0000\r\n"
MIME = "MIME-Version: 1.0\r\n"


def load(folder: Path) -> tuple[dict[str, Document], list[Skipped]]:
    conn = MailArchiveConnector(MailArchiveConfig(name="arch", type="mail_archive", path=folder))
    items = list(conn.load(None))
    assert isinstance(items[-1], Checkpoint)
    return {i.id: i for i in items if isinstance(i, Document)}, [i for i in items if isinstance(i, Skipped)]


def read(tmp_path: Path, raw: str | bytes, name: str = "a.eml") -> tuple[Document, list[Skipped]]:
    (tmp_path / name).write_bytes(raw.encode() if isinstance(raw, str) else raw)
    got, skipped = load(tmp_path)
    return got[f"arch:{name}"], skipped


def alternative(plain: str, html: str) -> str:
    return (
        f"{HEAD}Subject: Parking\r\n{MIME}Content-Type: multipart/alternative; boundary=BB\r\n\r\n"
        f"--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}\r\n"
        f"--BB\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--BB--\r\n"
    )


def test_a_stub_text_alternative_gives_way_to_the_html_one(tmp_path: Path) -> None:
    raw = alternative(
        "Please view this message in an HTML capable client.",
        "<html><body><p>The new code for the <b>ocelotgarage</b> gate is 4471.</p></body></html>",
    )
    doc, _ = read(tmp_path, raw)
    assert "The new code for the ocelotgarage gate is 4471." in doc.text
    assert "HTML capable client" not in doc.text


def test_an_html_part_beside_a_plain_body_is_no_other_form_of_it(tmp_path: Path) -> None:
    raw = alternative("OK, approved.", "<p>" + "This e-mail and its attachments are confidential. " * 3 + "</p>")
    doc, _ = read(tmp_path, raw.replace("multipart/alternative", "multipart/mixed"))  # a gateway's footer
    assert doc.text.endswith("\n\nOK, approved.")


def test_two_forms_of_one_body_keep_the_plain_one() -> None:
    plain = "Hi Alice,\n\nThe heronpark rota is attached; Dana is on call Friday.\n\nBob"
    html = "<p>Hi Alice,</p><p>The <b>heronpark</b> rota is attached; Dana is on call <i>Friday</i>.</p><p>Bob</p>"
    assert mail_text.chosen_body(html, plain) == (plain, False)
    disclaimer = "<p>This e-mail is confidential and meant for its addressee only.</p>"  # not the body's form
    assert mail_text.chosen_body(disclaimer, plain) == (plain, False)
    assert mail_text.chosen_body(html, "  ") == (
        "Hi Alice,\n\nThe heronpark rota is attached; Dana is on call Friday.\n\nBob",
        True,
    )


def test_outlook_plain_text_marks_read_as_the_html_reads(tmp_path: Path) -> None:
    plain = (
        "Please approve it in the portal<https://portal.example.com/r/7781?a=1&b=2>.\r\n\r\nThanks,\r\nBob\r\n"
        "[cid:image001.png@01DA2B3C.4D5E6F70]\r\nbob@example.com<mailto:bob@example.com> | +41 44 000 00 00\r\n"
        "[cid:image002.jpg@01DA2B3C.4D5E6F70]<https://www.linkedin.com/company/example>"
    )
    html = '<p>Please approve it in the <a href="https://portal.example.com/r/7781?a=1&amp;b=2">portal</a>.</p>'
    doc, _ = read(tmp_path, alternative(plain, html + "<p>Thanks,<br>Bob<br>bob@example.com</p>"))
    assert "in the portal (https://portal.example.com/r/7781?a=1&b=2)." in doc.text
    assert "\nbob@example.com | +41 44 000 00 00" in doc.text
    assert "cid:" not in doc.text and "<" not in doc.text.split("\n\n", 1)[1] and "linkedin" not in doc.text


INVITE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Design review of the wombatbridge"
    "\r\n  API\r\nLOCATION:Room Matterhorn 4.12\r\nDTSTART;TZID=Europe/Zurich:20261210T140000\r\n"
    "DTEND;TZID=Europe/Zurich:20261210T150000\r\nDESCRIPTION:Agenda: pagination\\, rate limits.\\nDial-in 555-0199\r\n"
    'ORGANIZER;CN="Bob, Facilities":mailto:bob@example.com\r\n'
    "ATTENDEE;CN=Alice;ROLE=REQ-PARTICIPANT:mailto:alice@example.com\r\nUID:abc123\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_an_invitation_is_indexed_as_its_event_once(tmp_path: Path) -> None:
    """Outlook sends the event as the alternative's calendar part and again as invite.ics."""
    raw = (
        f"{HEAD}Subject: Invitation: Design review\r\n{MIME}Content-Type: multipart/mixed; boundary=MM\r\n\r\n"
        "--MM\r\nContent-Type: multipart/alternative; boundary=AA\r\n\r\n"
        "--AA\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou have been invited.\r\n"
        f"--AA\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n{INVITE}--AA--\r\n"
        "--MM\r\nContent-Type: application/ics; name=invite.ics\r\nContent-Disposition: attachment; filename=invite.ics"
        f"\r\nContent-Transfer-Encoding: base64\r\n\r\n{base64.encodebytes(INVITE.encode()).decode()}--MM--\r\n"
    )
    doc, _ = read(tmp_path, raw)
    event = (
        "## Event: Design review of the wombatbridge API\n"
        "When: 2026-12-10 14:00 (Europe/Zurich) to 2026-12-10 15:00 (Europe/Zurich)\n"
        "Where: Room Matterhorn 4.12\nOrganizer: Bob, Facilities <bob@example.com>\n"
        "Attendees: Alice <alice@example.com>\n\nAgenda: pagination, rate limits.\nDial-in 555-0199"
    )
    assert doc.text.endswith("You have been invited.\n\n" + event)
    assert doc.text.count("wombatbridge") == 1 and "BEGIN:" not in doc.text


def test_an_ics_attachment_alone_is_read_as_its_event(tmp_path: Path) -> None:
    raw = (
        f"{HEAD}Subject: Kickoff\r\n{MIME}Content-Type: multipart/mixed; boundary=MM\r\n\r\n"
        "--MM\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--MM\r\n"
        "Content-Type: text/calendar; name=kickoff.ics\r\nContent-Disposition: attachment; filename=kickoff.ics\r\n\r\n"
        f"{INVITE.replace('wombatbridge', 'heronpeak')}--MM--\r\n"
    )
    doc, _ = read(tmp_path, raw)
    assert "## Attachment: kickoff.ics\n\n## Event: Design review of the heronpeak API\nWhen: 2026-12-10" in doc.text
    assert "DTSTART" not in doc.text and "\\," not in doc.text
    assert calendar_text("not a calendar") == ""
    alarm = "BEGIN:VEVENT\nSUMMARY:Standup\nBEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:Reminder\nEND:VALARM\nEND:VEVENT"
    assert calendar_text(alarm) == "## Event: Standup"  # an alarm's description is not the event's


def test_saved_mail_attached_as_octet_stream_is_read_as_a_message(tmp_path: Path) -> None:
    inner = (
        "From: bob@example.com\r\nSubject: Inner about the ravenpeak budget\r\nDate: Mon, 7 Dec 2026 09:00:00 +0000"
        "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "The ravenpeak budget was cut by 20 percen=\r\nt =E2=80=93 final.\r\n"
    )
    raw = (
        f"{HEAD}Subject: Fwd\r\n{MIME}Content-Type: multipart/mixed; boundary=OO\r\n\r\n--OO\r\n"
        "Content-Type: text/plain\r\n\r\nSee attached.\r\n--OO\r\nContent-Type: application/octet-stream; "
        'name="budget.eml"\r\nContent-Disposition: attachment; filename="budget.eml"\r\nContent-Transfer-Encoding: '
        f"base64\r\n\r\n{base64.encodebytes(inner.encode()).decode()}--OO--\r\n"
    )
    doc, _ = read(tmp_path, raw)
    assert "## Attachment: budget.eml\n\nFrom: bob@example.com\nSubject: Inner about the ravenpeak budget" in doc.text
    assert "The ravenpeak budget was cut by 20 percent – final." in doc.text and "MIME-Version" not in doc.text


def test_a_flowed_body_is_unflowed(tmp_path: Path) -> None:
    raw = (
        f"{HEAD}Subject: Flowed\r\n{MIME}Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\r\n\r\n"
        "The key is dolphinreplicationfact \r\nor and it must be set before the migra \r\ntion starts.\r\n"
        " From the ops side nothing changes.\r\n-- \r\nBob\r\n"
    )
    doc, _ = read(tmp_path, raw)
    assert doc.text.endswith(
        "The key is dolphinreplicationfactor and it must be set before the migration starts.\n"
        "From the ops side nothing changes."
    )
    plain = raw.replace("; delsp=yes", "").replace("fact \r\nor", "factor \r\nset")
    doc, _ = read(tmp_path, plain)
    assert "The key is dolphinreplicationfactor set and it must be set before the migra tion starts." in doc.text


def test_answers_written_into_an_outlook_quote_are_kept() -> None:
    quote = "From: Bob <bob@example.com>\nSent: Monday, December 7, 2026 9:00 AM\nTo: Alice\nSubject: budget\n\n"
    quote += "Can we spend 5k on the ternhall offsite?\n\nYes, up to 4,800 EUR for the ternhall offsite."
    assert mail_text.new_content("Approved, see my answers in red below.\n\n" + quote).endswith(
        "up to 4,800 EUR for the ternhall offsite."
    )
    assert mail_text.new_content("Comments inline.\n\n" + quote).endswith("4,800 EUR for the ternhall offsite.")
    assert mail_text.new_content("Approved.\n\n" + quote) == "Approved."  # no answers announced: history, trimmed


def test_an_opaque_signed_mail_is_read_and_an_encrypted_one_is_a_skip_by_policy(tmp_path: Path) -> None:
    inner = b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe cassowaryport contract was signed today.\r\n"
    signed = _signed_data(inner)
    assert signed_content(signed) == inner and signed_content(b"\x30\x03junk") is None
    smime = "Content-Type: application/pkcs7-mime; smime-type={}; name=smime.p7m\r\nContent-Disposition: attachment; "
    smime += "filename=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{}"
    opaque = f"{HEAD}Subject: Signed\r\n{MIME}" + smime.format("signed-data", base64.encodebytes(signed).decode())
    doc, skipped = read(tmp_path, opaque)
    assert doc.text.endswith("\n\nThe cassowaryport contract was signed today.") and not skipped
    encrypted = f"{HEAD}Subject: Sealed\r\n{MIME}" + smime.format("enveloped-data", "MIIBAAYJ\r\n")
    doc, skipped = read(tmp_path, encrypted, "b.eml")
    assert doc.title == "Sealed" and doc.text.endswith("UTC")  # its header block: who, when, what about
    assert [(s.id, s.failed) for s in skipped] == [("arch:b.eml#body", False)]
    assert skipped[0].reason.startswith("encrypted mail (S/MIME)")


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = bytes([size]) if size < 0x80 else bytes([0x82]) + size.to_bytes(2, "big")
    return bytes([tag]) + length + content


def _signed_data(content: bytes) -> bytes:
    """A CMS ContentInfo holding SignedData around `content` (no signer: the reader needs none)."""
    oid = _tlv(0x06, bytes.fromhex("2a864886f70d010702"))
    data_oid = _tlv(0x06, bytes.fromhex("2a864886f70d010701"))
    encap = _tlv(0x30, data_oid + _tlv(0xA0, _tlv(0x04, content)))
    signed = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x31, b"") + encap + _tlv(0x31, b""))
    return _tlv(0x30, oid + _tlv(0xA0, signed))


def test_an_undated_mail_takes_its_received_date_else_its_files_time(tmp_path: Path) -> None:
    body = "Subject: {}\r\n{}\r\nThe wrenhall note.\r\n"
    received = "Received: from mx.example.com by mail.example.com;\r\n Tue, 8 Dec 2026 11:00:00 +0100\r\n"
    doc, _ = read(tmp_path, "From: bob@example.com\r\nTo: alice@example.com\r\n" + body.format("R", received))
    assert doc.created_at is not None and doc.created_at.isoformat() == "2026-12-08T10:00:00+00:00"
    assert "\nDate: 2026-12-08 10:00 UTC\n" in doc.text
    (tmp_path / "b.eml").write_text("From: bob@example.com\r\nTo: alice@example.com\r\n" + body.format("N", ""))
    os.utime(tmp_path / "b.eml", (1_700_000_000, 1_700_000_000))
    doc = load(tmp_path)[0]["arch:b.eml"]
    assert doc.created_at is not None and doc.created_at.timestamp() == 1_700_000_000


MBOX = (
    "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nFrom: Eve <eve@example.com>\nTo: alice@example.com\n"
    "Subject: About the ibexrail\nDate: Tue, 1 Dec 2026 10:00:00 +0000\n\nthe ibexrail tender closes Friday.\n\n"
    "From here on the procurement team owns it.\n\nFrom 10:00 in 2026 Dec 3 the desk is closed.\nNote: really.\n\n"
    "From eve@example.com  Wed Dec  2 10:00:00 2026\nFrom: Eve <eve@example.com>\nTo: alice@example.com\n"
    "Subject: Gorillaport\nDate: Wed, 2 Dec 2026 10:00:00 +0000\n\nThe gorillaport contract is signed.\n\n"
    "From 1234@xxx Thu Dec 03 11:00:00 +0100 2026\nX-GM-THRID: 1\nSubject: Takeout\nFrom: eve@example.com\n\n"
    "Lemmingdock window.\n"
)


def test_an_unescaped_from_line_in_an_mbox_body_does_not_split_the_message(tmp_path: Path) -> None:
    (tmp_path / "archive.mbox").write_text(MBOX)
    got, _ = load(tmp_path)
    ids = _mbox_ids(tmp_path / "archive.mbox")
    assert sorted(got) == sorted(ids) and len(ids) == 3
    assert got[ids[0]].text.endswith(
        "Friday.\n\nFrom here on the procurement team owns it.\n\n"
        "From 10:00 in 2026 Dec 3 the desk is closed.\nNote: really."
    )
    assert [d.title for d in got.values()] == ["About the ibexrail", "Gorillaport", "Takeout"]
    takeout = got[ids[2]].created_at  # undated: its From_ line's date
    assert takeout is not None and takeout.isoformat() == "2026-12-03T10:00:00+00:00"
    assert got[ids[2]].text.endswith("Lemmingdock window.")


def _mbox_ids(box: Path) -> list[str]:
    from inlet.connectors.mail import _mbox_keys, _mbox_spans

    with box.open("rb") as handle:
        keys, _ = _mbox_keys([found for *_, found in _mbox_spans(handle)], None)
    return [f"arch:{box.name}#{key}" for key in keys]


def test_an_mbox_an_earlier_release_split_at_a_body_line_is_read_again_unchanged(tmp_path: Path) -> None:
    """Before, "From here on" split the first message in two: its checkpoint entry (marked 1) counts
    four messages. Unchanged as the file is, the next run reads it again and numbers it anew."""
    (tmp_path / "archive.mbox").write_text(MBOX)
    conn = MailArchiveConnector(MailArchiveConfig(name="arch", type="mail_archive", path=tmp_path))
    mtime, size, count, marker, _, keys, _ = _state(conn, None)["files"]["archive.mbox"]
    assert (count, marker, len(keys)) == (3, 4, 3)
    items = list(conn.load({"files": {"archive.mbox": [mtime, size, 4, 1]}}))
    ids = _mbox_ids(tmp_path / "archive.mbox")
    assert sorted(i.id for i in items if isinstance(i, Document)) == sorted(ids)
    assert sorted(i.id for i in items if isinstance(i, Deletion)) == [f"arch:archive.mbox#{n}" for n in range(4)]
    assert items[-1].state["files"]["archive.mbox"][2:4] == [3, 4]
    # and read the new way, it is not read again
    assert not [i for i in conn.load(items[-1].state) if isinstance(i, Document)]


def test_a_text_file_starting_with_from_is_no_mbox(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("From here on the notes are mine.\n\nNothing else.\n")
    got, skipped = load(tmp_path)
    assert not got and not skipped


def test_outlook_files_in_an_archive_are_skips_by_policy_each_run(tmp_path: Path) -> None:
    (tmp_path / "Contract renewal.msg").write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 600)
    (tmp_path / "one.eml").write_text("From: a@example.com\nTo: b@example.com\nSubject: One\n\nReadable.\n")
    conn = MailArchiveConnector(MailArchiveConfig(name="arch", type="mail_archive", path=tmp_path))
    for checkpoint in (None, _state(conn, None)):
        skipped = [i for i in conn.load(checkpoint) if isinstance(i, Skipped)]
        assert [(s.id, s.failed) for s in skipped] == [("arch:Contract renewal.msg", False)]
        assert skipped[0].reason == "Outlook .msg files are not read: export the mail as .eml or .mbox"


def _state(conn: MailArchiveConnector, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    items = list(conn.load(checkpoint))
    assert isinstance(items[-1], Checkpoint)
    return items[-1].state


NOTICE = (
    "This message is for the designated recipient only and may contain\nprivileged, proprietary, or otherwise "
    "private information.  If you have\nreceived it in error, please notify the sender immediately and delete the\n"
    "original.  Any other use of the email by you is prohibited."
)
CARD = "Direct Dial: +1 713 837 1749\nVPN & Octel: 83 / 71749\nFax: +1 713 257 7211\nemail: monica.l.brown@example.com"


def test_a_signature_card_and_a_legal_notice_are_trimmed_in_the_sender_s_text(tmp_path: Path) -> None:
    """A signature's phone lines with no "-- " line above them and a gateway's notice were
    indexed, and won as the best passage for any question with "VPN" or "private" in it."""
    body = (
        "Hi Phillip,\n\nThis is to confirm our meeting on Tuesday in EB 3267.\n\nThanks,\nMonica L. Brown\n"
        f"Accenture\nHouston - 2929 Allen Parkway\n{CARD}\n\n\n\n{NOTICE}\n"
    )
    doc, _ = read(tmp_path, f"{HEAD}Subject: Confirmation\r\n\r\n{body}")
    card = "Thanks,\nMonica L. Brown\nAccenture\nHouston - 2929 Allen Parkway"  # who and for whom: kept
    assert doc.text.endswith("This is to confirm our meeting on Tuesday in EB 3267.\n\n" + card)


def test_signatures_and_notices_are_trimmed_in_every_forwarded_message_too(tmp_path: Path) -> None:
    forwarded = (
        "---------------------- Forwarded by Kirk McDaniel/HOU/EES on 11/27/2001 10:04 AM ---------------------------"
        "\n\nsheri@example.com on 11/27/2001 09:09:46 AM\nTo:\tkirk@example.com\nSubject:\tRE: Video\n\n"
        "Kirk -\n\nThe shoot is on the 6th and 7th of December.\n\nSheri A. Righi\nAccenture\n"
        "Direct Dial: 860 756 2245\ne-mail: sheri@example.com\n\n\n"
        "-----Original Message-----\nFrom: steve@example.com\nSent: Monday\nTo: sheri@example.com\n"
        "Subject: Video\n\nThe studio is booked.\n-- \nSteve Johnson | Cramer | +1 781 000 0000\n\n"
        "Studio hours on the website.\n\n"
        "----- Forwarded by Sheri A. Righi on 11/21/2001 01:30 PM -----\n\nThese are the script changes.\n\n"
        f"Laura de la Torre\nAccenture\nResources\nHouston, Texas\nDirect Dial  713.837.2133\nOctel  83 / 72133\n\n"
        f"\n\n{NOTICE}\n\n\n\n{NOTICE}\n"
    )
    doc, _ = read(tmp_path, f"{HEAD}Subject: FW: Video\r\n\r\nTeam, FYI.\n\nKirk\n{forwarded}")
    text = doc.text
    assert "The shoot is on the 6th and 7th of December.\n\nSheri A. Righi\nAccenture\n\n--Original Message--" in text
    assert "Subject: Video\n\nThe studio is booked.\n\n-- Forwarded by Sheri A. Righi" in text  # to the next message
    assert text.endswith("These are the script changes.\n\nLaura de la Torre\nAccenture\nResources\nHouston, Texas")
    for gone in ("Direct Dial", "Octel", "e-mail:", "781", "Studio hours", "designated recipient"):
        assert gone not in text


def test_text_that_only_resembles_boilerplate_is_kept() -> None:
    """A sentence about confidentiality is no notice, and a phone number in a paragraph of prose
    or under a line that is no one's name is no signature."""
    body = (
        "Please keep the merger confidential; unauthorised copies are prohibited.\n\n"
        "Call the helpdesk at the new number\nPhone: 713 853 1234\n\nBob Smith\nPlease book the room.\n"
        "Phone: 713 853 9999"
    )
    assert mail_text.new_content(body) == body
