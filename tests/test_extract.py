"""Which quantities are figures, and what each one says (sentences written for these tests)."""

import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT, SHARED

from reportdata.extract import figures, report_year
from reportdata.layout import structure


def rows(text: str, year: int | None = 2023) -> list[dict]:
    st = structure(text, front_matter=False)
    return [
        {
            "text": f.quantity.text,
            "subject": f.subject,
            "value_base": f.quantity.value_base,
            "unit_family": f.quantity.unit_family,
            "qualifier": f.quantity.qualifier,
            "status": f.status,
            "measure": f.measure,
            "period": f.period,
        }
        for f in figures(st.text, st.sections, year)
    ]


def by_text(found: list[dict]) -> dict[str, dict]:
    return {r["text"]: r for r in found}


def test_subject_before_the_number_drops_framing_words():
    found = by_text(rows("今年以来,全县累计发放助学贷款3600余万元,惠及学生。"))
    r = found["3600余万元"]
    assert r["subject"] == "发放助学贷款"
    assert r["value_base"] == 36000000
    assert r["qualifier"] == "over"


def test_subject_after_a_classifier():
    found = by_text(rows("新建9座污水处理厂,改造供水管网120公里。"))
    assert found["9座"]["subject"] == "污水处理厂"
    assert found["120公里"]["subject"] == "改造供水管网"


def test_names_in_quotes_are_not_figures():
    found = rows("深入开展“百日攻坚”行动和“3+2”计划,打造“两区一中心”,完成造林800亩。")
    assert [r["text"] for r in found] == ["800亩"]


def test_a_quote_left_open_ends_at_the_line_break():
    """An opening mark never closed on its line quotes nothing on the next lines, not even
    up to a closing mark there; quotes on one line still hold names."""
    from reportdata.extract import _quote_spans

    text = "开展“绿色家园行动\n新增绿地30公顷”,建成“口袋公园”5个。"
    assert _quote_spans(text) == [(text.index("“口"), text.rindex("”") + 1)]
    found = rows("开展“绿色家园行动\n\n新增绿地30公顷”,建成“口袋公园”5个。")
    assert [r["text"] for r in found] == ["30公顷", "5个"]


def test_thresholds_dates_and_markers_are_not_figures():
    text = (
        "1.2025年3月,引进过10亿元项目12个,5000平方米以上商业综合体达到7家,"
        "世界500强企业落户,第一批项目开工。"
    )
    found = [r["text"] for r in rows(text)]
    assert found == ["12个", "7家"]


def test_ordinals_are_not_figures_but_ranks_are():
    found = by_text(rows("第0项任务和第3批试点已启动,经济总量居全省第4位,考核获评第二名。"))
    assert list(found) == ["第4位", "第二名"]
    assert found["第4位"]["measure"] == "rank"
    assert found["第二名"]["value_base"] == 2
    assert found["第二名"]["unit_family"] == "other"


def test_lone_yi_before_a_classifier_is_an_article():
    assert rows("建成一批示范项目,一户一策推进改造。") == []


def test_estimate_governs_the_list_it_opens():
    found = by_text(rows("全年外贸进出口总额预计达到45亿元、实际利用外资2.1亿美元;税收增长3%。"))
    assert found["45亿元"]["status"] == "estimate"
    assert found["2.1亿美元"]["status"] == "estimate"
    assert found["2.1亿美元"]["unit_family"] == "money"
    assert found["3%"]["status"] == "actual"


def test_future_and_disposal_jiang():
    found = by_text(rows("区里将新建学校4所。将辖区划分为86个网格。"))
    assert found["4所"]["status"] == "target"
    assert found["86个"]["status"] == "actual"


def test_growth_rate_is_a_change_of_the_level_before_it():
    found = by_text(rows("实现地区生产总值612.4亿元、增长6.1%,居民收入占比提高到41%。"))
    assert found["612.4亿元"]["subject"] == "地区生产总值"
    assert found["612.4亿元"]["measure"] == "level"
    assert found["6.1%"]["measure"] == "change"
    assert found["6.1%"]["subject"] == "地区生产总值增长"


def test_period_from_the_paragraph_as_of_month_and_report_year():
    text = "2021年,全区新增就业2.3万人。\n截至10月底,新登记市场主体4100户。共建成公园9个。"
    found = by_text(rows(text, 2022))
    assert found["2.3万人"]["period"] == "2021"
    assert found["4100户"]["period"] == "2022-10"
    assert found["9个"]["period"] == "2022"


def test_report_year_from_the_text():
    assert report_year("2022年工作回顾\n全年完成投资。", None) == 2022
    assert report_year("过去一年,我们攻坚克难。", 2024) == 2023
    text = "刚刚过去的一年成绩显著。2019年完成收入12亿元。2020年将继续努力,新增8亿元。"
    assert report_year(text, None) == 2019
    meeting = "1月9日,区里召开2024年经济工作会议。2023年全区实现收入31亿元。"
    assert report_year(meeting, None) == 2023  # the meeting's year states no figure
    assert report_year("发布时间:2024-01-12\n全年新增就业1.2万人,比去年增加。", None) == 2023


def _load_score_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("score", SHARED / "score_indicators.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _extract_jsonl(path):
    exe = [sys.executable, "-m", "reportdata.cli", "extract", str(path), "--format", "jsonl"]
    out = subprocess.run(exe, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_embedded_default_has_every_gold_figure_and_nothing_excluded():
    score = _load_score_module()
    gold = score.load_rows((SHARED / "corpus/dev/lixia-2021-qilu.gold.jsonl").read_text("utf-8"))
    preds = _extract_jsonl(ROOT / "raw/embedded/lixia-2021-qilu.txt")
    result = score.score(gold, preds)
    assert result["missed"] == []
    assert result["wrong"] == []
    assert result["tp"] == result["gold"] == 18
    for field in score.FIELDS:
        assert result[field + "_ok"] == 18, field


def test_dev_corpus_score_floor():
    """The dev score may only rise: these floors are the scores reached so far."""
    score = _load_score_module()
    total: dict = {}
    for txt in sorted((SHARED / "corpus/dev").glob("*.txt")):
        gold_file = txt.with_suffix(".gold.jsonl")
        gold = score.load_rows(gold_file.read_text("utf-8"))
        score.add(total, score.score(gold, _extract_jsonl(txt)))
    p = total["tp"] / total["predicted"]
    r = total["tp"] / total["gold"]
    f1 = 2 * p * r / (p + r)
    assert f1 >= 0.99
    assert total["subject_f1_sum"] / total["tp"] >= 0.93
    for field in score.FIELDS:
        assert total[field + "_ok"] / total["tp"] >= 0.99, field


@pytest.mark.parametrize("text", ["", "   ", "没有任何数字。"])
def test_text_without_figures_gives_no_rows(text):
    assert rows(text) == []


def test_offsets_point_into_the_repaired_text():
    text = "全区新增绿地\n\n地面积3.2万平方米,栽植乔木4500株。"
    st = structure(text, front_matter=False)
    for f in figures(st.text, st.sections, 2023):
        assert st.text[f.quantity.start : f.quantity.end] == f.quantity.text
        assert math.isfinite(f.quantity.value_base)


def test_traditional_text_reads_like_simplified():
    found = by_text(rows("全縣實現財政收入12.5億元、增長6.2%,預計明年突破15億元。"))
    assert found["12.5億元"]["value_base"] == 1250000000
    assert found["6.2%"]["measure"] == "change"
    assert found["6.2%"]["subject"] == "財政收入增長"
    assert found["突破15億元"]["status"] == "estimate"
    assert found["突破15億元"]["qualifier"] == "over"


def test_a_lead_in_before_a_colon_governs_the_list():
    text = "会议提出今年的主要目标:粮食产量稳定在60万吨,城镇新增就业8000人。"
    found = by_text(rows(text))
    assert found["60万吨"]["status"] == "target"
    assert found["8000人"]["status"] == "target"


def test_a_rate_is_a_level_unless_it_is_a_share_or_a_change():
    found = by_text(rows("登记失业率控制在3.5%以内,税收占一般公共预算收入的78%。"))
    assert found["3.5%以内"]["measure"] == "level"
    assert found["3.5%以内"]["qualifier"] == "under"
    assert found["78%"]["measure"] == "share"


def test_a_shared_predicate_carries_subject_and_measure_along_the_list():
    found = by_text(rows("城乡居民收入分别增长5.1%、6.3%。"))
    assert found["6.3%"]["subject"] == found["5.1%"]["subject"] == "城乡居民收入增长"
    assert found["6.3%"]["measure"] == "change"


def test_nouns_that_look_like_plan_words_do_not_make_targets():
    found = by_text(rows("走访目标客户260家,完成年度计划的112%,争取上级资金3.4亿元。"))
    assert found["260家"]["status"] == "actual"
    assert found["112%"]["status"] == "actual"
    assert found["112%"]["measure"] == "share"
    assert found["3.4亿元"]["status"] == "actual"
    assert found["3.4亿元"]["subject"] == "争取上级资金"


def test_anniversaries_are_not_figures():
    assert [r["text"] for r in rows("庆祝建校60周年,新建实验室8间。")] == ["8间"]


def test_from_one_level_to_another_shares_the_subject():
    found = by_text(rows("森林覆盖率由38.5%提高到41.2%。"))
    assert found["38.5%"]["subject"] == "森林覆盖率"
    assert found["41.2%"]["subject"] == "森林覆盖率"
    assert found["41.2%"]["measure"] == "level"


def test_a_list_of_subjects_is_shared_out_over_a_list_of_figures():
    found = by_text(rows("城、乡居民收入分别增长5.1%、6.3%,一、二产业增加值分别为12亿元、30亿元。"))
    assert found["5.1%"]["subject"] == "城居民收入增长"
    assert found["6.3%"]["subject"] == "乡居民收入增长"
    assert found["12亿元"]["subject"] == "一产业增加值"
    assert found["30亿元"]["subject"] == "二产业增加值"


def test_a_bulletin_compares_with_last_year():
    text = (
        "年末全市常住人口412.6万人,比上年末增加1.8万人。城镇化率为70.2%,比上年末提高"
        "0.7个百分点。全年粮食总产量96.4万吨,比上年增长1.9%。年末全市共有规模以上工业企业"
        "2105家,比上年末减少12家。"
    )
    found = by_text(rows(text))
    assert found["412.6万人"]["subject"] == "常住人口"
    assert (found["1.8万人"]["subject"], found["1.8万人"]["measure"]) == ("常住人口增加", "change")
    assert found["0.7个百分点"]["subject"] == "城镇化率提高"
    assert found["1.9%"]["subject"] == "粮食总产量增长"
    assert found["2105家"]["subject"] == "规模以上工业企业"
    assert found["12家"]["measure"] == "change"


def test_traditional_full_width_report_with_a_plan():
    text = (
        "縣長表示，２０２３年全縣城鎮登記失業率控制在３．５％以內。"
        "報告提出，縣裡將新建學校５所，改造老舊小區３０個。"
    )
    found = by_text(rows(text, 2023))
    assert found["３．５％以內"]["subject"] == "城鎮登記失業率"
    assert found["３．５％以內"]["qualifier"] == "under"
    assert found["５所"]["subject"] == "新建學校"
    assert found["５所"]["status"] == "target"
    assert found["３０個"]["status"] == "target"  # the opening 將 governs the sentence


def test_disposal_jiang_in_an_opening_clause_is_no_plan():
    found = by_text(rows("将辖区划分为64个网格,配备网格员130名。"))
    assert found["64个"]["status"] == "actual"
    assert found["130名"]["status"] == "actual"


def test_multiples_are_changes_of_their_subject():
    found = by_text(rows("全县旅游收入是五年前的2.4倍,接待游客规模扩大1.6倍。"))
    assert (found["2.4倍"]["subject"], found["2.4倍"]["measure"]) == ("旅游收入", "change")
    assert found["1.6倍"]["measure"] == "change"
    assert found["1.6倍"]["unit_family"] == "ratio"


def test_a_plan_sections_heading_year_dates_its_targets():
    text = "二、2025年工作安排\n\n全力稳增长,新开工重点项目40个,新增城镇就业9000人。"
    st = structure(text, front_matter=False)
    found = {f.quantity.text: f for f in figures(st.text, st.sections, 2024)}
    assert found["40个"].status == "target"
    assert found["40个"].period == "2025"
    assert found["9000人"].period == "2025"


def test_a_work_reports_review_reads_cleanly():
    text = (
        "全县地区生产总值完成312.5亿元,增速居全市第3位。"
        "城乡居民人均可支配收入分别达到3.96万元和1.87万元。"
    )
    found = by_text(rows(text))
    assert found["312.5亿元"]["subject"] == "地区生产总值"
    assert (found["第3位"]["subject"], found["第3位"]["measure"]) == ("地区生产总值增速", "rank")
    assert found["3.96万元"]["subject"] == "城乡居民人均可支配收入"
    assert found["1.87万元"]["subject"] == "城乡居民人均可支配收入"


def test_recent_years_frame_a_figure_and_concentrations_are_read():
    found = by_text(rows("近5年来累计投入资金7.3亿元。全市PM2.5平均浓度为29微克/立方米。"))
    assert found["7.3亿元"]["subject"] == "投入资金"
    assert found["29微克/立方米"]["subject"] == "PM2.5平均浓度"
    assert found["29微克/立方米"]["value_base"] == 29


def test_patterns_searched_by_their_last_character_find_what_the_pattern_finds():
    """A pattern ending in $ is tried only where the text's last character can end a match;
    that skip never loses a match."""
    import random

    import reportdata.extract as extract

    endings = [extract._TAIL_STRIP, extract._CHANGE_WORDS, extract._TO_LEVEL, extract._COMPARED]
    assert all(e.ends is not None for e in endings)
    rng = random.Random(5)
    for ending in endings:
        alphabet = sorted({c for c in ending.pattern.pattern if "\u4e00" <= c <= "\u9fff"})
        alphabet += ["年", "的", ",", "\n"]
        for _ in range(3000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
            pos = rng.randint(0, len(text))
            want = ending.pattern.search(text, pos)
            got = ending.search(text, pos)
            assert (want and want.span()) == (got and got.span()), text
