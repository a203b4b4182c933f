"""Layout repair and structure, on texts written for these tests."""

from reportdata.layout import structure

ARTICLE = """\
河西区全面推进城市更新。

稳字当头 敢为人先 河西:打造宜居宜业新城区

滨海日报·滨海新闻
记者 王小明 李华

砥砺奋进谱新篇 民生福祉持续增进

过去一年,河西区新开工保障性住房1200套,新增公共停车

车位3600个,改造老旧小区45个。

聚焦教育医疗,新建幼儿园6所,新增学位2700个,完成投资9.8亿元。

笃行不怠再出发 建设美丽宜居新河西

河西区将持续推进城市更新,把老旧街区改造得更加

数说河西

2022年,河西区地区生产总值达到512.3亿元,同比增长5.6%。

全区常住人口86.4万人。

舒适,让居民住得更加安心。

着力优化营商环境,全面落实惠企政策。

河西区老旧小区改造后焕然一新。张三 摄
"""


def _section_text(st, section):
    return st.text[section.start : section.end]


def test_front_matter_title_subtitle_and_credits():
    st = structure(ARTICLE)
    assert st.title == "河西:打造宜居宜业新城区"
    assert st.subtitle == "稳字当头 敢为人先"
    assert st.reporters == ["王小明", "李华"]
    assert st.photographers == ["张三"]
    assert st.credit_line == "滨海日报·滨海新闻"


def test_word_split_across_a_column_break_with_repeated_character_is_joined():
    st = structure(ARTICLE)
    assert "新增公共停车车位3600个" not in st.text
    assert "新增公共停车位3600个" in st.text


def test_word_split_without_repetition_is_joined():
    text = (
        "标题\n\n记者 赵六\n\n一\n\n"
        "全区建成社区食堂12个,日均服务老人1500人次,服务中\n\n心运营良好。\n"
    )
    st = structure(text)
    assert "服务中心运营良好。" in st.text


def test_sidebar_inside_a_sentence_becomes_its_own_section():
    st = structure(ARTICLE)
    assert "改造得更加舒适,让居民住得更加安心。" in st.text
    kinds = [(s.kind, s.heading) for s in st.sections]
    assert ("sidebar", "数说河西") in kinds
    sidebar = next(s for s in st.sections if s.kind == "sidebar")
    body = _section_text(st, sidebar)
    assert body.startswith("数说河西")
    assert "512.3亿元" in body and "86.4万人" in body
    assert "舒适" not in body
    # The sidebar follows the section whose sentence it interrupted.
    order = [s.heading for s in st.sections]
    assert order.index("数说河西") == order.index("笃行不怠再出发 建设美丽宜居新河西") + 1


def test_sections_are_headings_in_order_with_spans_into_the_text():
    st = structure(ARTICLE)
    headings = [s.heading for s in st.sections if s.kind == "heading"]
    assert headings == ["砥砺奋进谱新篇 民生福祉持续增进", "笃行不怠再出发 建设美丽宜居新河西"]
    assert st.sections[0].kind == "lead"
    previous_end = -1
    for s in st.sections:
        assert previous_end < s.start <= s.end <= len(st.text)
        if s.heading:
            assert st.text[s.start : s.start + len(s.heading)] == s.heading
        previous_end = s.end


def test_plan_sections_are_marked():
    st = structure(ARTICLE)
    by_heading = {s.heading: s for s in st.sections}
    assert by_heading["笃行不怠再出发 建设美丽宜居新河西"].plan is True
    assert by_heading["砥砺奋进谱新篇 民生福祉持续增进"].plan is False
    assert by_heading["数说河西"].plan is False


def test_text_without_front_matter_is_one_lead_section():
    st = structure("全市粮食产量达到95.2万吨。\n\n森林覆盖率提高到42.1%。\n")
    assert [s.kind for s in st.sections] == ["lead"]
    assert "95.2万吨" in st.text and "42.1%" in st.text
