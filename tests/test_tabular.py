"""Figures from tables, with units declared by captions and column headers."""

from reportdata.extract import figures
from reportdata.layout import structure
from reportdata.read import read_bytes
from reportdata.tables import DocumentInfo, build_rows


def table_rows(text: str, year: int | None = 2023) -> dict[str, dict]:
    st = structure(text, front_matter=False)
    out = {}
    for f in figures(st.text, st.sections, year):
        assert st.text[f.quantity.start : f.quantity.end] == f.quantity.text
        out[f"{f.subject} {f.quantity.text}"] = {
            "value_base": f.quantity.value_base,
            "unit": f.quantity.unit,
            "family": f.quantity.unit_family,
            "measure": f.measure,
            "period": f.period,
            "status": f.status,
        }
    return out


def test_caption_unit_applies_to_the_cells_under_it():
    text = (
        "主要农产品产量\n单位:万吨\n| 品种 | 产量 | 增长(%) |\n|---|---|---|\n"
        "| 小麦 | 46.2 | 1.5 |\n| 玉米 | 58.9 | -0.8 |\n"
    )
    found = table_rows(text)
    assert found["小麦产量 46.2"]["value_base"] == 462000
    assert found["小麦产量 46.2"]["family"] == "weight"
    assert found["玉米增长 -0.8"]["measure"] == "change"
    assert found["玉米增长 -0.8"]["unit"] == "%"
    assert len(found) == 4


def test_header_units_and_years_per_column():
    text = "| 指标 | 2022年(亿元) | 2023年(亿元) |\n| 税收收入 | 31.5 | 33.2 |\n"
    found = table_rows(text)
    assert found["税收收入 31.5"]["period"] == "2022"
    assert found["税收收入 33.2"]["period"] == "2023"
    assert found["税收收入 33.2"]["value_base"] == 3320000000


def test_inline_units_in_cells_and_targets_in_headers():
    text = "| 项目 | 目标 |\n| 新建学校 | 6所 |\n| 新增学位 | 4800个 |\n"
    found = table_rows(text)
    assert found["新建学校 6所"]["status"] == "target"
    assert found["新增学位 4800个"]["value_base"] == 4800


def test_tables_of_dates_and_codes_give_no_figures():
    text = (
        "| 索引号 | /2024-0031 |\n| 成文日期 | 2024年03月02日 |\n| 发布时间 | 2024-03-05 09:10 |\n"
    )
    assert table_rows(text) == {}


def test_html_table_through_the_whole_reader():
    page = (
        "<html><head><meta charset='utf-8'><title>统计</title></head><body>"
        "<nav><a href='/'>首页</a> <a href='/news'>新闻</a></nav><article><h1>全县经济简况</h1>"
        "<p>全县经济运行稳中有进,主要指标完成情况见下表,数据来自县统计部门的初步核算。</p>"
        "<table><caption>单位:亿元</caption><tr><th>指标</th><th>总量</th><th>增速(%)</th></tr>"
        "<tr><td>规上工业产值</td><td>188.4</td><td>7.2</td></tr></table>"
        "<p>全县上下将继续努力,推动经济高质量发展再上新台阶。</p></article>"
        "<footer>版权所有</footer></body></html>"
    ).encode()
    info = DocumentInfo("t", "d", "", "p", "a", "l", "o", "0" * 64, 2024)
    rows = build_rows(info, read_bytes(page, "page.html"))
    got = {(r["subject"], r["value_base"], r["measure"]) for r in rows["indicators"]}
    assert ("规上工业产值", 18840000000.0, "level") in got
    assert ("规上工业产值增长", 7.2, "change") in got
    assert rows["documents"][0]["format"] == "html"


def _ruled_table_pdf() -> bytes:
    from _helpers import make_pdf

    lines = b"0.5 w 20 40 m 280 40 l S 20 70 m 280 70 l S 20 100 m 280 100 l S "
    lines += b"20 40 m 20 100 l S 150 40 m 150 100 l S 280 40 m 280 100 l S "
    text = (
        b"BT /F1 10 Tf 20 120 Td (Summary of the year) Tj ET "
        b"BT /F1 10 Tf 25 80 Td (Item) Tj ET BT /F1 10 Tf 155 80 Td (Share \\(%\\)) Tj ET "
        b"BT /F1 10 Tf 25 50 Td (Services) Tj ET BT /F1 10 Tf 155 50 Td (61.5) Tj ET"
    )
    return make_pdf(lines + text)


def test_pdf_ruled_tables_become_rows_with_header_units():
    result = read_bytes(_ruled_table_pdf(), "report.pdf")
    assert result.format == "pdf"
    assert "Summary of the year" in result.text
    assert "| Item | Share (%) |" in result.text
    assert "| Services | 61.5 |" in result.text
    found = table_rows(result.text)
    assert found["ServicesShare 61.5"]["unit"] == "%"
    assert found["ServicesShare 61.5"]["value_base"] == 61.5
