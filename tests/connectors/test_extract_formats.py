"""What `connectors/extract.py` makes of encodings and office formats as workplaces hold them."""

import pytest

from inlet.connectors.extract import decode, extract_text
from inlet.errors import NotTextError

GERMAN = "Protokoll der Sitzung in München: Geschäftsführer Jürgen Weiß bestätigt das Budget."
CHINESE = "会议纪要：数据库迁移计划在星期五完成。负责人是王小明。"


def test_one_stray_byte_leaves_the_rest_of_a_utf8_text_as_it_is():
    assert decode(GERMAN.encode() + b" \x96 ok") == GERMAN + " – ok"  # the stray byte read alone
    assert extract_text(CHINESE.encode() + b"\x96\n", "zh.txt").startswith(CHINESE)  # text, not "binary"
    cut = "Grüße aus Zürich: 5 €".encode()[:-1]  # a file cut inside its last character
    assert decode(cut) == "Grüße aus Zürich: 5 \ufffd"


@pytest.mark.parametrize(
    "encoding, text",
    [
        ("shift_jis", "東京オフィスの引っ越しは来月です。担当は田中さんです。"),
        ("gbk", CHINESE),
        ("euc-kr", "회의록: 데이터베이스 이전 계획은 금요일에 완료됩니다."),
        ("cp1251", "Заявление на отпуск подписывает бухгалтерия до пятницы."),
        ("cp1252", "It’s €100 for the “lynxharbor” upgrade – approved."),
        ("latin-1", "Café crème, naïve façade, señor."),
        ("cp1252", "Grüße"),
    ],
)
def test_legacy_encodings_are_read_as_the_text_they_hold(encoding, text):
    assert extract_text(text.encode(encoding) + b"\r\n", "notes.txt").strip() == text


def test_the_charset_html_or_xml_declares_is_honoured():
    russian = "Заявление на отпуск подписывает бухгалтерия."
    page = f'<html><head><meta charset="windows-1251"></head><body><p>{russian}</p></body></html>'
    assert extract_text(page.encode("cp1251"), "a.html") == russian
    japanese = "東京オフィスの引っ越しは来月です。"
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"></head>'
        f"<body><p>{japanese}</p></body></html>"
    )
    assert extract_text(page.encode("shift_jis"), "b.html") == japanese
    xml = f'<?xml version="1.0" encoding="koi8-r"?>\n<note>{russian}</note>\n'
    assert decode(xml.encode("koi8-r")) == xml


def test_random_bytes_are_still_no_text():
    import random

    noise = random.Random(7).randbytes(4000).replace(b"\x00", b"\x01")
    with pytest.raises(NotTextError):
        extract_text(noise, "noise.txt")
