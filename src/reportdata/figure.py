"""A figure as extraction finds it, before it becomes an indicators row."""

from __future__ import annotations

from dataclasses import dataclass

from reportdata.quantity import Quantity


@dataclass(slots=True)
class Figure:
    """One extracted figure, with every column of the extraction guide and its position."""

    subject: str
    quantity: Quantity
    status: str
    measure: str
    period: str
    sentence: str
    sentence_start: int
