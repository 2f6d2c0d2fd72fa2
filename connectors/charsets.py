"""Charset labels as browsers and mail clients read them: the WHATWG Encoding Standard's label table.

Invariant: one table maps every label the Encoding Standard lists that Python can read (about 220:
`x-sjis`, `iso-8859-8-i`, `x-mac-roman`, `ks_c_5601-1987`, ...; not ISO-2022-CN, `x-user-defined`
nor "replacement" itself, which have no codec: such a label is read as unlabelled) to the Python
codec that reads its bytes as a browser does, including the Standard's own readings of a label as a
larger encoding (a page labelled Latin-1 or ASCII is Windows-1252, GB2312 is GB18030, Shift_JIS is
Windows-31J, EUC-KR is Windows-949, Big5 is Big5-HKSCS). The labels the Standard maps to "replacement" for web security
(ISO-2022-KR, HZ-GB-2312) name encodings mail did use: they are read with Python's codecs. A label
outside the table is looked up in Python's codec registry (`utf-7`, `cp850`), then read as browsers
read its canonical name; one naming a codec of no text encoding (`zlib`, `base64`, `rot13`) is
unknown. `extract.codec_of` is the one reader of this table.

ISO-2022-JP and EUC-JP are read as the Standard's decoders read them, through index-jis0208 as
Windows holds it (Windows-31J): with NEC's row 13 (①, Ⅲ, ㈱, ㍻) and the NEC-selected IBM
extensions, which Outlook and Windows send under those labels and Python's `iso2022_jp` and
`euc_jp` refuse (one ① made a whole mail unreadable). They are the codecs `whatwg_iso2022_jp` and
`whatwg_euc_jp`, registered with Python's codec registry when this module is imported.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

_LABELS_OF = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859-2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2",
    "iso8859-3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3",
    "iso8859-4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4",
    "iso8859-5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 iso_8859-5:1988",
    "iso8859-6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 iso-8859-6-e "
    "iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    "iso8859-7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 iso88597 "
    "iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    # ISO-8859-8 (visual order) and ISO-8859-8-I (logical order) hold the same bytes for the same letters
    "iso8859-8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 iso88598 "
    "iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    "iso8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859-13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859-14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859-16": "iso-8859-16",
    "koi8-r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8-u": "koi8-ru koi8-u",
    "mac-roman": "csmacintosh mac macintosh x-mac-roman",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    "cp1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 iso88591 "
    "iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 latin5 "
    "windows-1254 x-cp1254",
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    "mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "gb18030": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk gb18030",
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "whatwg_euc_jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "whatwg_iso2022_jp": "csiso2022jp iso-2022-jp",
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "cp949": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 ksc_5601 "
    "windows-949",
    "iso2022_kr": "csiso2022kr iso-2022-kr",
    "hz": "hz-gb-2312",
    "utf-16-be": "unicodefffe utf-16be",
    "utf-16-le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16le",
    "utf-16": "utf-16",  # the Standard reads it as UTF-16LE; with a byte order mark, Python follows the mark
}

WHATWG_LABELS: dict[str, str] = {label: codec for codec, labels in _LABELS_OF.items() for label in labels.split()}
"""Every label of the WHATWG Encoding Standard (lower case) and the Python codec that reads it."""

# A Python codec's canonical name (a label outside the table, `latin-1` say) read as the Standard
# reads the encoding it names
AS_BROWSERS_READ = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "big5": "big5hkscs",
    "euc_jp": "whatwg_euc_jp",
    "iso2022_jp": "whatwg_iso2022_jp",
}


def _sjis_pair(first: int, second: int) -> bytes:
    """A JIS X 0208 code (two bytes 0x21-0x7E) as Shift_JIS bytes, read by Windows-31J."""
    lead = (first + 1) // 2 + (0x70 if first <= 0x5E else 0xB0)
    trail = second + (0x1F if second <= 0x5F else 0x20) if first % 2 else second + 0x7E
    return bytes([lead, trail])


# ISO-2022-JP's designations (RFC 1468, and JIS X 0201 katakana as Windows sends it): the set the
# bytes after each escape are in
_DESIGNATION = re.compile(rb"\x1b(\(B|\(J|\$@|\$B|\(I)")
_SETS = {b"(B": "ascii", b"(J": "ascii", b"$@": "jis", b"$B": "jis", b"(I": "kana"}


def _iso2022_jp(data: Any, errors: str = "strict") -> tuple[str, int]:
    """ISO-2022-JP as the WHATWG decoder reads it: each double-byte code through Windows-31J."""
    data, out = bytes(data), []
    pos, charset = 0, "ascii"
    for found in [*_DESIGNATION.finditer(data), None]:
        end = found.start() if found else len(data)
        run = data[pos:end]
        if charset == "jis":
            if len(run) % 2 or not all(0x21 <= b <= 0x7E for b in run):
                out.append(_bad(data, pos, end, errors, "a JIS X 0208 run holds a byte outside 0x21-0x7E"))
            else:
                pairs = b"".join(_sjis_pair(run[n], run[n + 1]) for n in range(0, len(run), 2))
                out.append(_through(pairs, data, pos, end, errors))
        elif charset == "kana":
            if all(0x21 <= b <= 0x5F for b in run):
                out.append(bytes(b | 0x80 for b in run).decode("cp932"))
            else:
                out.append(_bad(data, pos, end, errors, "a katakana run holds a byte outside 0x21-0x5F"))
        elif run.isascii() and b"\x1b" not in run:
            out.append(run.decode("ascii"))
        else:
            out.append(_bad(data, pos, end, errors, "an unknown escape or 8-bit byte"))
        if found:
            charset, pos = _SETS[found[1]], found.end()
    return "".join(out), len(data)


def _euc_jp(data: Any, errors: str = "strict") -> tuple[str, int]:
    """EUC-JP as the WHATWG decoder reads it: JIS X 0208 codes through Windows-31J, JIS X 0212's
    (after 0x8F) as Python reads them, half-width katakana after 0x8E."""
    data, out = bytes(data), []
    n, plain = 0, 0
    while n < len(data):
        byte = data[n]
        if byte < 0x80:
            n += 1
            continue
        out.append(data[plain:n].decode("ascii"))
        if byte == 0x8E and n + 1 < len(data) and 0xA1 <= data[n + 1] <= 0xDF:
            out.append(data[n + 1 : n + 2].decode("cp932"))
            n += 2
        elif byte == 0x8F and n + 2 < len(data):
            out.append(_through(data[n : n + 3], data, n, n + 3, errors, "euc_jp"))
            n += 3
        elif 0xA1 <= byte <= 0xFE and n + 1 < len(data) and 0xA1 <= data[n + 1] <= 0xFE:
            out.append(_through(_sjis_pair(byte & 0x7F, data[n + 1] & 0x7F), data, n, n + 2, errors))
            n += 2
        else:
            out.append(_bad(data, n, n + 1, errors, "no EUC-JP character starts here"))
            n += 1
        plain = n
    out.append(data[plain:].decode("ascii"))
    return "".join(out), len(data)


def _through(raw: bytes, data: bytes, start: int, end: int, errors: str, codec: str = "cp932") -> str:
    """`raw` (the bytes of `data[start:end]` recoded) read in `codec`; a code it lacks as `errors` says."""
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        if errors == "strict":
            raise UnicodeDecodeError(codec, data, start, end, "no character at this code") from None
        return raw.decode(codec, errors)


def _bad(data: bytes, start: int, end: int, errors: str, why: str) -> str:
    """Bytes no character is made of: an error, or as `errors` ("replace", "ignore") has them read."""
    if errors == "strict":
        raise UnicodeDecodeError("iso2022_jp", data, start, end, why)
    return "\ufffd" if errors == "replace" else ""


def _encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    raise UnicodeEncodeError("whatwg", text, 0, len(text), "decoding only")


_WHATWG_CODECS = {
    "whatwg_iso2022_jp": codecs.CodecInfo(_encode, _iso2022_jp, name="whatwg_iso2022_jp"),
    "whatwg_euc_jp": codecs.CodecInfo(_encode, _euc_jp, name="whatwg_euc_jp"),
}
codecs.register(lambda name: _WHATWG_CODECS.get(name.replace("-", "_")))
