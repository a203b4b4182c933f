"""A tiny progress channel: steps report what they did; a front end may listen.

The library and the flows call :func:`emit`; the CLI installs a listener that draws a
progress bar. With no listener, emitting costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, str], None]
_listeners: list[Listener] = []


def emit(stage: str, detail: str = "") -> None:
    """Report that ``stage`` (pull, extract, validate, load, publish) finished ``detail``."""
    for listener in list(_listeners):
        listener(stage, detail)


def listen(listener: Listener) -> Callable[[], None]:
    """Install a listener; returns a function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None
