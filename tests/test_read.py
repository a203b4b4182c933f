"""Reading raw snapshots: format sniffing, encodings, HTML main text, PDF text layers."""

from __future__ import annotations

import codecs

import pytest
from _helpers import SENTENCES, TRADITIONAL, make_pdf, text_pdf

from reportdata import read
from reportdata.errors import InputError
from reportdata.read import decode, read_bytes, sniff_format

ARTICLE = "全县去年新建农村公路46公里,改造危房320户,新增城镇就业2100人。"
SECOND = "今年以来,县里持续优化营商环境,各项工作取得明显成效,群众满意度不断提升。"
NAV_LINKS = ("网站首页", "政务动态", "信息公开")
FOOTER = "版权所有:某县人民政府办公室"


def page(charset: str, body: str, title: str = "某县新闻") -> str:
    return (
        "<!DOCTYPE html>\n<html><head>"
        f'<meta charset="{charset}"><title>{title}</title></head>\n<body>\n{body}\n</body></html>'
    )


def article_page(charset: str) -> str:
    nav = "".join(f'<li><a href="/{i}">{name}</a></li>' for i, name in enumerate(NAV_LINKS))
    return page(
        charset,
        f'<div class="nav"><ul>{nav}</ul></div>\n'
        f'<div class="article"><h1>某县经济稳步回升</h1><p>{ARTICLE}</p><p>{SECOND}</p></div>\n'
        f'<div class="footer"><p>{FOOTER}</p></div>',
    )


# ------------------------------------------------------------------------------ format


@pytest.mark.parametrize(
    ("data", "hint", "expected"),
    [
        (text_pdf("Revenue 1"), "", "pdf"),
        (text_pdf("Revenue 1"), "report.txt", "pdf"),  # the bytes win over the name
        (b"<!DOCTYPE html><html><body><p>x</p></body></html>", "", "html"),
        (b"\xef\xbb\xbf\n  <html><body><p>x</p></body></html>", "", "html"),
        ("<div><p>全年收入</p></div>".encode(), "", "html"),
        (SENTENCES.encode(), "", "text"),
        (SENTENCES.encode(), "report.txt", "text"),
        (SENTENCES.encode(), "page.html", "html"),
        (SENTENCES.encode(), "text/html; charset=utf-8", "html"),
        (SENTENCES.encode(), "text/plain; charset=utf-8", "text"),
    ],
)
def test_sniff_format(data: bytes, hint: str, expected: str) -> None:
    assert sniff_format(data, hint) == expected


# ------------------------------------------------------------------------------ encodings


@pytest.mark.parametrize(
    ("data", "original", "encoding"),
    [
        (SENTENCES.encode("utf-8"), SENTENCES, "utf-8"),
        (codecs.BOM_UTF8 + SENTENCES.encode("utf-8"), SENTENCES, "utf-8"),
        (SENTENCES.encode("gb18030"), SENTENCES, "gb18030"),
        (SENTENCES.encode("gbk"), SENTENCES, "gb18030"),
        (TRADITIONAL.encode("big5"), TRADITIONAL, "big5"),
        (codecs.BOM_UTF16_LE + SENTENCES.encode("utf-16-le"), SENTENCES, "utf-16"),
        (codecs.BOM_UTF16_BE + SENTENCES.encode("utf-16-be"), SENTENCES, "utf-16"),
    ],
    ids=["utf-8", "utf-8-bom", "gb18030", "gbk", "big5", "utf-16-le", "utf-16-be"],
)
def test_the_same_text_decodes_from_every_supported_encoding(
    data: bytes, original: str, encoding: str
) -> None:
    text, found = decode(data)
    assert text == original
    assert found == encoding
    result = read_bytes(data, "report.txt")
    assert (result.text, result.format, result.encoding) == (original, "text", encoding)


def test_gb18030_only_characters_survive() -> None:
    # 㐀 lies outside GBK: only GB18030 (four-byte) can carry it.
    text = "㐀村新建文化广场2处,面积1.2万平方米。"
    assert decode(text.encode("gb18030")) == (text, "gb18030")


def test_charset_from_the_content_type_is_used_for_plain_text() -> None:
    data = SENTENCES.encode("gbk")
    result = read_bytes(data, "text/plain; charset=GBK")
    assert (result.text, result.encoding) == (SENTENCES, "gb18030")


# ------------------------------------------------------------------------------ HTML


def test_html_main_text_in_gbk_without_navigation_or_footer() -> None:
    data = article_page("gbk").encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the test page really is not UTF-8
    result = read_bytes(data, "news.html")
    assert result.format == "html"
    assert result.encoding == "gb18030"
    assert ARTICLE in result.text
    assert SECOND in result.text
    for link in NAV_LINKS:
        assert link not in result.text
    assert FOOTER not in result.text


def test_html_mislabelled_as_latin1_is_still_read_as_chinese() -> None:
    data = article_page("iso-8859-1").encode("gbk")
    result = read_bytes(data, "text/html; charset=ISO-8859-1")
    assert ARTICLE in result.text
    assert result.encoding == "gb18030"


def test_server_charset_comes_before_the_meta_tag() -> None:
    # Big5 bytes decode cleanly, into nonsense, as the GB2312 the page's template claims;
    # the server's header is right, and browsers follow the header.
    html = page("gb2312", f"<div><p>{TRADITIONAL}</p><p>{TRADITIONAL}</p></div>", "某縣新聞")
    data = html.encode("big5")
    assert TRADITIONAL not in data.decode("gb18030")
    result = read_bytes(data, "text/html; charset=big5")
    assert TRADITIONAL.strip() in result.text
    assert result.encoding == "big5"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<script>var a = 1;</script>",
        '<div class="nav"><ul>'
        + "".join(f'<li><a href="/{i}">{n}</a></li>' for i, n in enumerate(NAV_LINKS))
        + "</ul></div>",
        f'<nav><a href="/">{NAV_LINKS[0]}</a></nav><footer><p>{FOOTER}</p></footer>',
    ],
    ids=["empty-body", "script-only", "links-only", "nav-and-footer"],
)
def test_html_page_without_an_article_is_refused(body: str) -> None:
    with pytest.raises(InputError, match="no article text"):
        read_bytes(page("utf-8", body).encode(), "page.html")


# ------------------------------------------------------------------------------ not reports


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b" \r\n\t  \n", "empty"),
        (codecs.BOM_UTF8, "empty"),
        (codecs.BOM_UTF8 + b" \n\n", "empty"),
        (codecs.BOM_UTF16_LE + " \n".encode("utf-16-le"), "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "binary"),
        (b"PK\x03\x04\x14\x00" + b"word/document.xml" * 4, "binary"),
        ("收入".encode() + b"\x00\x01\x02\x00" + "增长".encode(), "binary"),
    ],
    ids=[
        "empty",
        "whitespace",
        "bom-only",
        "bom-whitespace",
        "utf16-whitespace",
        "png",
        "zip",
        "nul",
    ],
)
def test_files_that_are_not_reports_raise_one_clear_sentence(data: bytes, words: str) -> None:
    with pytest.raises(InputError) as info:
        read_bytes(data, "report.txt")
    message = str(info.value)
    assert words in message
    assert "\n" not in message
    assert message[0].isupper() and message.endswith(".")


def test_undecodable_bytes_are_refused() -> None:
    # Bytes no CJK codec accepts (0x80 and 0xFF lead bytes) and no NUL.
    data = bytes([0x80, 0xFF, 0x41, 0xFE, 0x7F, 0x81, 0x20, 0xFF]) * 40
    with pytest.raises(InputError, match="encoding"):
        read_bytes(data, "report.txt")


def test_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data = SENTENCES.encode()
    monkeypatch.setattr(read, "MAX_BYTES", len(data) - 1)
    with pytest.raises(InputError, match=f"larger than the {len(data) - 1} bytes limit"):
        read_bytes(data, "report.txt")
    monkeypatch.setattr(read, "MAX_BYTES", len(data))
    assert read_bytes(data, "report.txt").text == SENTENCES


# ------------------------------------------------------------------------------ PDF


def test_pdf_text_layer_is_read() -> None:
    data = text_pdf("Revenue 238.4 and 9.1")
    assert "Revenue 238.4 and 9.1" in read.pdf_text(data)
    result = read_bytes(data, "report.pdf")
    assert result.format == "pdf"
    assert "Revenue 238.4 and 9.1" in result.text


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.8])
def test_truncated_pdf_is_refused(keep: float) -> None:
    data = text_pdf("Revenue 238.4 and 9.1")
    with pytest.raises(InputError, match="truncated or damaged"):
        read_bytes(data[: int(len(data) * keep)], "report.pdf")


def test_pdf_without_text_layer_is_refused() -> None:
    data = make_pdf(b"0 0 m 200 100 l S")  # a page with a line drawn and no text
    with pytest.raises(InputError, match="no text layer"):
        read_bytes(data, "scan.pdf")
