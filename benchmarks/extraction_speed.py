"""Extraction throughput on one core, beside JioNLP's money extractor on the same text.

    .venv/bin/pip install jionlp   # benchmark only; not a dependency of reportdata
    .venv/bin/python benchmarks/extraction_speed.py [--rounds 5] [--out docs/benchmarks.md]

The text is the embedded default plus, when ../shared is beside the project, the dev corpus
read from there (it is never copied into the repository). Each contender processes every
document in turn; the best of ``--rounds`` rounds is reported as characters a second:

- reportdata: layout repair, sections and every kind of figure with subject, qualifier,
  status, measure and period (what `reportdata extract` does after reading the file);
- JioNLP ``jionlp.ner.extract_money``: money amounts only;
- a bare scan with reportdata's quantity regex, for scale.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "corpus" / "dev"


def documents() -> list[str]:
    docs = [(ROOT / "raw/embedded/lixia-2021-qilu.txt").read_text("utf-8")]
    if DEV.is_dir():
        docs += [p.read_text("utf-8") for p in sorted(DEV.glob("*.txt")) if "lixia" not in p.name]
    return docs


def best_rate(fn, docs: list[str], rounds: int, repeat: int) -> tuple[float, int]:
    chars = sum(len(d) for d in docs) * repeat
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            for d in docs:
                fn(d)
        best = min(best, time.perf_counter() - start)
    return chars / best, chars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=20, help="passes over the corpus per round")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    args = ap.parse_args()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    from reportdata.extract import figures, report_year
    from reportdata.layout import structure
    from reportdata.normalize import fold
    from reportdata.quantity import QUANTITY_RE

    def ours(text: str) -> int:
        st = structure(text)
        return len(figures(st.text, st.sections, report_year(st.text, None)))

    def bare(text: str) -> int:
        return sum(1 for _ in QUANTITY_RE.finditer(fold(text)))

    with contextlib.redirect_stdout(io.StringIO()):
        import jionlp  # prints a banner on import

    def jio(text: str) -> int:
        return len(jionlp.ner.extract_money(text))

    docs = documents()
    for fn in (ours, bare, jio):  # warm caches (folding table, regex compilation, dictionaries)
        for d in docs:
            fn(d)
    rates = {
        "reportdata figures (all kinds)": best_rate(ours, docs, args.rounds, args.repeat),
        "JioNLP extract_money (money only)": best_rate(jio, docs, args.rounds, args.repeat),
        "bare quantity regex scan": best_rate(bare, docs, args.rounds, args.repeat),
    }
    jio_rate = rates["JioNLP extract_money (money only)"][0]
    lines = [
        "# Extraction throughput",
        "",
        f"Measured by `benchmarks/extraction_speed.py` on {platform.machine()}, one core, "
        f"Python {platform.python_version()}, over {len(docs)} documents "
        f"({sum(len(d) for d in docs):,} characters) processed {args.repeat} times a round, "
        f"best of {args.rounds} rounds.",
        "",
        "| contender | characters a second | × JioNLP |",
        "|---|---:|---:|",
    ]
    for name, (rate, _) in rates.items():
        lines.append(f"| {name} | {rate:,.0f} | {rate / jio_rate:.2f} |")
    lines += [
        "",
        "reportdata does more than JioNLP here: it repairs the layout, splits sections and finds",
        "every kind of figure (money, areas, counts, people, rates, ranks) with its subject,",
        "qualifier, status, measure and period. The floor set by issue 3 is JioNLP's speed; the",
        "goal is three times it.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():
        old = args.out.read_text("utf-8")
        marker = "# Extraction throughput"
        rest = old.split(marker)[0].rstrip()
        text = (rest + "\n\n" if rest else "") + "\n".join(lines)
    else:
        text = "\n".join(lines)
    args.out.write_text(text, encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
