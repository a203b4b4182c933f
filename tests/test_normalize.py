"""Folding for matching: one character for one, idempotent, the same on both paths."""

import random

import numpy  # noqa: F401 - loaded, so that long texts take the vectorised path

from reportdata.normalize import _table_str, fold


def test_fold_maps_width_and_script_one_for_one():
    text = "區屬地區生產總值增長９．３％，預計萬億　元"
    folded = fold(text)
    assert folded == "区属地区生产总值增长9.3%,预计万亿 元"
    assert len(folded) == len(text)


def test_long_and_short_texts_fold_alike_and_twice_changes_nothing():
    rng = random.Random(7)
    alphabet = [chr(rng.randrange(0x20, 0x2FFFF)) for _ in range(3000)] + list("區，１😀")
    for size in (5, 255, 256, 4000):
        text = "".join(rng.choice(alphabet) for _ in range(size))
        folded = fold(text)
        assert folded == text.translate(_table_str())
        assert len(folded) == len(text)
        assert fold(folded) == folded
