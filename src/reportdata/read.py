"""Read a raw snapshot: detect its format and encoding, and return its text."""

from __future__ import annotations

import codecs
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from reportdata.errors import InputError, ReportdataError

MAX_BYTES = 50 * 1024 * 1024
_HTML_HINT = re.compile(rb"<(?:!doctype\s+html|html|head|body|meta|div|p|table)[\s>]", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_-]+)""", re.I)
_BINARY_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"BZh",
    b"7z\xbc\xaf",
    b"Rar!",
    b"\x7fELF",
    b"MZ",
    b"RIFF",
    b"OggS",
    b"ID3",
    b"\x00\x00\x00",
)
# Names we record for the encodings we read; GB2312 and GBK are read as their superset GB18030.
_CANONICAL = {
    "utf_8": "utf-8",
    "utf_8_sig": "utf-8",
    "ascii": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "gb18030": "gb18030",
    "big5": "big5",
    "big5hkscs": "big5",
    "cp950": "big5",
    "utf_16": "utf-16",
    "utf_16_le": "utf-16",
    "utf_16_be": "utf-16",
}


@dataclass(frozen=True)
class ReadResult:
    """A report's text with the format and encoding it was read in."""

    text: str
    format: str
    encoding: str


def size_limit() -> str:
    """The size limit in words, for error messages."""
    if MAX_BYTES >= 2**20 and MAX_BYTES % 2**20 == 0:
        return f"{MAX_BYTES // 2**20} MiB"
    return f"{MAX_BYTES} bytes"


def _media_type(hint: str) -> str:
    """The media type of a Content-Type header without its parameters, or the hint itself."""
    return hint.split(";", 1)[0].strip().lower()


def charset_of(hint: str) -> str | None:
    """The charset parameter of a Content-Type header, if the hint is one."""
    m = re.search(r";\s*charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", hint, re.I)
    return m.group(1) if m else None


def sniff_format(data: bytes, hint: str = "") -> str:
    """'pdf', 'html' or 'text', from the bytes first and the file name or media type second."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf\r\n\t ")
    if head.startswith(b"%PDF"):
        return "pdf"
    kind = _media_type(hint)
    if "pdf" in kind and b"%PDF" in data[:1024]:
        return "pdf"
    if _HTML_HINT.search(head[:2048]) or kind.endswith(
        (".html", ".htm", "text/html", "application/xhtml+xml")
    ):
        return "html"
    return "text"


# Labels that servers and page templates often put on pages in another encoding (a GBK page
# declared as ISO-8859-1 decodes "cleanly" into nonsense): tried only after GB18030 and Big5.
_WEAK = frozenset({"latin_1", "iso_8859_1", "iso8859_1", "latin1", "cp1252", "windows_1252"})


def _codec_name(label: str) -> str:
    codec = label.strip().lower().replace("-", "_")
    return {"gb2312": "gb18030", "gbk": "gb18030", "x_gbk": "gb18030"}.get(codec, codec)


def _bom(data: bytes) -> tuple[str, str] | None:
    for bom, codec, name in (
        (codecs.BOM_UTF8, "utf-8-sig", "utf-8"),
        (codecs.BOM_UTF32_LE, "utf-32", "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16", "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16", "utf-16"),
    ):
        if data.startswith(bom):
            return codec, name
    return None


def _cjk_share(text: str) -> float:
    if not text:
        return 0.0
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    return cjk / max(1, sum(1 for c in text if not c.isspace()))


def decode(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode bytes to text, detecting the encoding; returns (text, encoding name).

    Never assumes: a BOM wins, then strict UTF-8, then a declared charset that decodes cleanly,
    then the candidates GB18030 and Big5 judged by charset-normalizer and by how much of the
    result reads as Chinese.
    """
    if not data.strip():
        raise InputError("The file is empty: there is no text to read.")
    bom = _bom(data)
    if bom:
        try:
            return data.decode(bom[0]), bom[1]
        except UnicodeError as exc:
            raise InputError(
                f"The file starts with a {bom[1].upper()} byte order mark but does not decode "
                f"as {bom[1].upper()}; it may be damaged."
            ) from exc
    if b"\x00" in data[:4096]:
        raise InputError("The file is binary (it holds NUL bytes), not a text, HTML or PDF report.")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    codec = _codec_name(declared) if declared else None
    if codec and codec not in _WEAK:
        try:
            text = data.decode(codec)
            return text, _CANONICAL.get(codec, codec)
        except (UnicodeError, LookupError):  # UnicodeError: codecs such as "undefined"
            pass
    candidates: list[tuple[float, str, str]] = []
    for codec in ("gb18030", "big5hkscs"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        candidates.append((_cjk_share(text) + _common_share(text), codec, text))
    if not candidates and codec in _WEAK:
        # A page labelled Latin-1 that is no Chinese encoding either: take the label.
        try:
            return data.decode(codec), _CANONICAL.get(codec, codec)
        except UnicodeDecodeError:
            pass
    if not candidates:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None or _cjk_share(str(best)) < 0.05:
            raise InputError(
                "The file's encoding could not be recognised as UTF-8, GB18030/GBK, Big5 or "
                "UTF-16; it may be binary or damaged."
            )
        return str(best), _CANONICAL.get(best.encoding, best.encoding)
    candidates.sort(reverse=True)
    _, codec, text = candidates[0]
    return text, _CANONICAL.get(codec, codec)


# The most frequent characters of Chinese prose, simplified and traditional; text decoded with
# the wrong codec reads as rare characters, so their share tells the right codec.
_COMMON = frozenset(
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能"
    "下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量"
    "都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各"
    "重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代"
    "想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接"
    "知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北"
    "造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打"
    "白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今"
    "集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近"
    "矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写"
    "存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听"
    "該講為這個們來時會發於對國進產種經說現實動點從業應當還間樣關與無過後學麼長頭問題說區億萬"
)


def _common_share(text: str) -> float:
    cjk = [c for c in text if "\u4e00" <= c <= "\u9fff"]
    if not cjk:
        return 0.0
    return sum(1 for c in cjk if c in _COMMON) / len(cjk)


def html_text(data: bytes, encoding_hint: str | None = None) -> tuple[str, str]:
    """Main text of an HTML page (navigation, footers and scripts dropped) and its encoding.

    ``encoding_hint`` is the charset the server declared; as in browsers it comes before the
    page's own ``<meta charset>``.
    """
    declared = None
    m = _META_CHARSET.search(data[:4096])
    if m:
        declared = m.group(1).decode("ascii", "replace")
    if encoding_hint and _codec_name(encoding_hint) not in _WEAK:
        declared = encoding_hint
    markup, encoding = decode(data, declared or encoding_hint)
    import trafilatura

    text = trafilatura.extract(
        markup,
        include_tables=True,
        include_comments=False,
        include_images=False,
        favor_recall=True,
        deduplicate=False,
    )
    text = _trim_boilerplate(text or "", markup)
    if not text.strip():
        raise InputError("The HTML page has no article text that could be found.")
    return text, encoding


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _boilerplate(markup: str) -> set[str]:
    """Texts of the page's links, navigation, page header and footer, whitespace removed.

    Links in headings (a linked article title) and the header and footer of an <article>
    are the article's own and are not counted.
    """
    from lxml import etree
    from lxml import html as lxml_html

    try:
        tree = lxml_html.fromstring(markup)
    except (etree.ParserError, ValueError):
        return set()
    boiler: set[str] = set()
    for el in tree.iter("a", "nav", "header", "footer", "menu", "button", "option"):
        ancestors = {a.tag for a in el.iterancestors()}
        if el.tag == "a" and ancestors & {"h1", "h2", "h3"}:
            continue
        if el.tag in {"header", "footer"} and "article" in ancestors:
            continue
        boiler.add(_squash(el.text_content()))
        boiler.update(_squash(t) for t in el.itertext())
    boiler.discard("")
    return boiler


def _trim_boilerplate(text: str, markup: str) -> str:
    """Drop the runs of link, navigation and footer lines that open or close the text.

    trafilatura keeps a page's menu when the article is short, and returns the menu alone
    when the page has no article; either way those lines are not the report.
    """
    boiler = _boilerplate(markup)
    lines = text.splitlines()
    start, end = 0, len(lines)
    while start < end and (not lines[start].strip() or _squash(lines[start]) in boiler):
        start += 1
    while end > start and (not lines[end - 1].strip() or _squash(lines[end - 1]) in boiler):
        end -= 1
    return "\n".join(lines[start:end])


def _pdf_page_text(page) -> str:
    """A page's text with its ruled tables rendered as ``| cell | cell |`` rows after it."""
    tables = page.find_tables()
    if not tables:
        return page.extract_text() or ""
    boxes = [t.bbox for t in tables]

    def outside(obj: dict) -> bool:
        x, top = (
            (obj.get("x0", 0) + obj.get("x1", 0)) / 2,
            (obj.get("top", 0) + obj.get("bottom", 0)) / 2,
        )
        return not any(b[0] <= x <= b[2] and b[1] <= top <= b[3] for b in boxes)

    prose = page.filter(outside).extract_text() or ""
    rows = []
    for table in tables:
        for row in table.extract():
            cells = [" ".join((c or "").split()) for c in row]
            if any(cells):
                rows.append("| " + " | ".join(cells) + " |")
        rows.append("")
    return prose + "\n\n" + "\n".join(rows)


def pdf_text(data: bytes) -> str:
    """The text layer of a PDF, page by page."""
    import pdfplumber
    from pdfminer.pdfparser import PDFSyntaxError

    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            pages = [_pdf_page_text(page) for page in pdf.pages]
    except (PDFSyntaxError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"The PDF could not be read; it may be truncated or damaged ({exc})."
        ) from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("pdfminer", "pdfplumber", "pypdfium2")):
            raise InputError("The PDF could not be read; it may be truncated or damaged.") from exc
        raise
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text.strip():
        raise InputError("The PDF has no text layer (it looks scanned); there is no text to read.")
    return text


def read_file(path: Path, label: str, error: type[ReportdataError] = InputError) -> bytes:
    """A report file's bytes, with one sentence (as ``error``) for each way reading fails; a
    file over the size limit is always an InputError (trying again will not help).

    Only regular files are read: a named pipe or a device would block or never end. The read
    itself is bounded too, in case the file grows after its size was checked.
    """
    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer; a regular file ignores it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise error(f"{label} does not exist.") from exc
    except PermissionError as exc:
        raise error(f"{label} cannot be read (permission denied).") from exc
    except OSError as exc:
        raise error(f"{label} cannot be read ({exc.strerror or exc}).") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{label} is a folder, not a file.")
        raise InputError(f"{label} is not a regular file (a pipe, socket or device).")
    too_big = f"{label} is larger than the {size_limit()} limit."
    if info.st_size > MAX_BYTES:
        os.close(fd)
        raise InputError(too_big)
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise error(f"{label} cannot be read ({exc.strerror or exc}).") from exc
    if len(data) > MAX_BYTES:
        raise InputError(too_big)
    return data


def read_bytes(data: bytes, hint: str = "") -> ReadResult:
    """Turn a raw snapshot into text, recording the format and encoding found."""
    if len(data) > MAX_BYTES:
        raise InputError(f"The file is larger than the {size_limit()} limit.")
    if not data.strip():
        raise InputError("The file is empty: there is no text to read.")
    fmt = sniff_format(data, hint)
    if fmt == "pdf":
        return ReadResult(pdf_text(data), "pdf", "utf-8")
    if any(data.startswith(m) for m in _BINARY_MAGIC) and not _bom(data):
        raise InputError("The file is binary (an image, archive or program), not a report.")
    charset = charset_of(hint)
    if fmt == "html":
        text, encoding = html_text(data, charset)
        return ReadResult(text, "html", encoding)
    text, encoding = decode(data, charset)
    if not text.strip():
        raise InputError("The file is empty: there is no text to read.")
    if _cjk_share(text) < 0.02 and len(text) > 200 and "\ufffd" in text:
        raise InputError("The file does not read as text in any supported encoding.")
    return ReadResult(text, "text", encoding)
