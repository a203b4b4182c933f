"""Scraping noise removed by general rules (texts written for these tests)."""

from reportdata.extract import figures
from reportdata.layout import structure
from reportdata.noise import clean

SCRAPED = """\
某市工作报告Zq9
各位代表:Zq9
过去一年,全市新建&ldquo;口袋公园&rdq
uo;32个,改造燃气管道
186公里,城镇化率达到67.
4%。Zq9
新增就业岗位2.1万个,绿化覆
盖率提高到41%。Zq9
"""


def test_html_entities_split_across_lines_are_decoded():
    assert "“口袋公园”" in clean(SCRAPED)
    assert "&" not in clean(SCRAPED)


def test_injected_watermark_tokens_are_removed():
    cleaned = clean(SCRAPED)
    assert "Zq9" not in cleaned
    assert "某市工作报告\n" in cleaned


def test_real_ascii_words_and_units_survive():
    text = "5G基站建成1200个。\nGDP增长5%。\n5G网络覆盖城区。\n建成5G示范应用。"
    assert clean(text) == text


def test_pinyin_readings_after_characters_are_removed():
    assert clean("前往涪(fú)城區(qū)调研。") == "前往涪城區调研。"
    assert clean("设立基金(A类)两支。") == "设立基金(A类)两支。"


def test_hard_wrapped_lines_join_without_losing_characters():
    st = structure(SCRAPED, front_matter=False)
    assert "改造燃气管道186公里,城镇化率达到67.4%。" in st.text
    assert "绿化覆盖率提高到41%。" in st.text
    found = {f.quantity.text: f for f in figures(st.text, st.sections, 2023)}
    assert set(found) == {"32个", "186公里", "67.4%", "2.1万个", "41%"}
    assert found["67.4%"].quantity.value == 67.4


def test_a_hard_wrap_never_drops_a_repeated_character():
    st = structure("全区新建口袋公园12个,培育人\n人持证的家庭驿站5个。", front_matter=False)
    assert "培育人人持证的家庭驿站5个。" in st.text
    st = structure("全区新建口袋公园12个,培育人\n\n人持证的家庭驿站5个。", front_matter=False)
    assert "培育人持证的家庭驿站5个。" in st.text  # across a column break it is one


def test_one_number_a_line_is_joined_to_its_label():
    text = "全年主要指标\n\n粮食总产量\n62.4\n万吨\n蔬菜产量\n18.7\n万吨\n"
    st = structure(text, front_matter=False)
    found = {f.quantity.text: f for f in figures(st.text, st.sections, 2023)}
    assert set(found) == {"62.4万吨", "18.7万吨"}
    assert found["62.4万吨"].subject == "粮食总产量"
    assert found["18.7万吨"].subject == "蔬菜产量"
