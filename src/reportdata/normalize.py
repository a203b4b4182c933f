"""Width folding for matching: one character in, one character out, so offsets never move."""

from __future__ import annotations

_TABLE = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_TABLE.update(
    {
        0x3000: 0x20,  # ideographic space
        0x00A0: 0x20,  # no-break space
        0xFF61: ord("。"),
        0x2212: ord("-"),  # minus sign
        0x2014: ord("—"),
        0x00B7: ord("·"),
    }
)


def fold(text: str) -> str:
    """Full-width digits, letters and punctuation to ASCII; same length as ``text``."""
    return text.translate(_TABLE)
