"""Memory freed by one step of a run goes back to the system before the next."""

from __future__ import annotations

import subprocess
import sys

# Many small heap blocks freed behind one still in use: glibc keeps their pages until asked.
PROBE = """
import os
from reportdata.memory import give_back

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

blocks = [bytearray(1024) for _ in range(100_000)]
kept = bytearray(1024)
del blocks
before = rss_mb()
asked = give_back()
print(asked, before, rss_mb())
"""


def test_give_back_returns_freed_pages_to_the_system():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    asked, before, after = out[0] == "True", float(out[1]), float(out[2])
    assert asked
    assert before - after > 50, (before, after)  # ~100 MB were freed
