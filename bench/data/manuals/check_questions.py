"""Check bench/data/manuals/questions.jsonl against the documents in bench/data/manuals/docs/.

Run from the repository root:

    .venv/bin/python bench/data/manuals/check_questions.py            # check, print counts
    .venv/bin/python bench/data/manuals/check_questions.py --spans    # also print each gold span

Every line must be a JSON object with the fields question, source, quote, answer and kind;
kind is "paraphrased" or "lexical"; source names a file in docs/; the quote (40-400
characters, no whitespace runs) occurs exactly once in the whitespace-collapsed text that the
project's loader (retrieval.loaders.load_bytes) extracts from that file; the answer (2-60
characters) occurs inside the quote. The gold span of a question is where its quote occurs in
the loader's text, mapped back from the collapsed text to the original character offsets
(see gold_span). Exits 1 and lists the problems when any line fails, or when the set falls
short of the benchmark's targets (60 questions, 20 documents, 60% paraphrased, 20 Node.js
and 30 Valgrind questions).

Only the standard library and the project's loader are used; nothing here ranks or searches.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repository root, for `retrieval`

from retrieval.loaders import load_bytes  # noqa: E402

FIELDS = ("question", "source", "quote", "answer", "kind")
KINDS = ("paraphrased", "lexical")
WHITESPACE = re.compile(r"\s+")


def collapse(text: str) -> tuple[str, list[int]]:
    """Whitespace runs -> one space; also the original offset of each collapsed character."""
    out, where = [], []
    for match in re.finditer(r"\s+|\S+", text):
        if match.group().isspace():
            out.append(" ")
            where.append(match.start())
        else:
            out.append(match.group())
            where.extend(range(match.start(), match.end()))
    return "".join(out), where


def occurrences(haystack: str, needle: str) -> list[int]:
    found, start = [], haystack.find(needle)
    while start != -1:
        found.append(start)
        start = haystack.find(needle, start + 1)
    return found


def gold_span(text: str, quote: str) -> tuple[int, int] | None:
    """(start, end) of the quote in the loader's original text, or None if it is not there once."""
    collapsed, where = collapse(text)
    hits = occurrences(collapsed, quote)
    if len(hits) != 1:
        return None
    start = hits[0]
    end = start + len(quote)
    return where[start], where[end - 1] + 1


def main(argv: list[str]) -> int:
    show_spans = "--spans" in argv
    path = HERE / "questions.jsonl"
    texts: dict[str, tuple[str, str, list[int]]] = {}
    problems: list[str] = []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            problems.append(f"line {number}: blank line")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not JSON ({error})")
            continue
        where = f"line {number}"
        missing = [f for f in FIELDS if not isinstance(row.get(f), str) or not row[f].strip()]
        if missing:
            problems.append(f"{where}: missing or empty fields {missing}")
            continue
        extra = sorted(set(row) - set(FIELDS))
        if extra:
            problems.append(f"{where}: unexpected fields {extra}")
        if row["kind"] not in KINDS:
            problems.append(f"{where}: kind {row['kind']!r} is not one of {KINDS}")
        source = HERE / "docs" / row["source"]
        if "/" in row["source"] or not source.is_file():
            problems.append(f"{where}: source {row['source']!r} is not a file in docs/")
            continue
        if row["source"] not in texts:
            text = load_bytes(row["source"], source.read_bytes()).text
            texts[row["source"]] = (text, *collapse(text))
        text, collapsed, offsets = texts[row["source"]]
        quote, answer = row["quote"], row["answer"]
        if WHITESPACE.sub(" ", quote).strip() != quote:
            problems.append(f"{where}: quote has whitespace runs or padding; collapse it")
        if not 40 <= len(quote) <= 400:
            problems.append(f"{where}: quote is {len(quote)} characters, not 40-400")
        if not 2 <= len(answer) <= 60:
            problems.append(f"{where}: answer is {len(answer)} characters, not 2-60")
        if WHITESPACE.sub(" ", answer).strip() not in quote:
            problems.append(f"{where}: answer {answer!r} is not inside the quote")
        hits = occurrences(collapsed, quote)
        if len(hits) != 1:
            problems.append(f"{where}: quote found {len(hits)} times in {row['source']} (must be once): "
                            f"{quote[:70]!r}")
            continue
        rows.append(row)
        if show_spans:
            start, end = offsets[hits[0]], offsets[hits[0] + len(quote) - 1] + 1
            print(f"{number:3d} {row['source']} [{start}:{end}] {row['question'][:60]}")

    questions = [r["question"].strip().lower() for r in rows]
    for question, count in Counter(questions).items():
        if count > 1:
            problems.append(f"question asked {count} times: {question[:70]!r}")

    total = len(rows)
    by_source = Counter(r["source"] for r in rows)
    node = sum(c for s, c in by_source.items() if s.startswith("node-"))
    valgrind = sum(c for s, c in by_source.items() if s.startswith("valgrind-"))
    paraphrased = sum(r["kind"] == "paraphrased" for r in rows)
    share = paraphrased / total if total else 0.0
    print(f"questions: {total} valid, {len(problems)} line problem(s)")
    print(f"documents with questions: {len(by_source)} "
          f"(docs/ holds {len(list((HERE / 'docs').glob('*.html')))} files)")
    print(f"paraphrased: {paraphrased} ({share:.0%}), lexical: {total - paraphrased}")
    print(f"Node.js: {node}, Valgrind: {valgrind}")
    for source, count in sorted(by_source.items()):
        print(f"  {count:3d}  {source}")

    for target, ok in (("at least 60 questions", total >= 60),
                       ("at least 20 documents", len(by_source) >= 20),
                       ("at least 60% paraphrased", share >= 0.6),
                       ("at least 20 Node.js questions", node >= 20),
                       ("at least 30 Valgrind questions", valgrind >= 30)):
        if not ok:
            problems.append(f"target not met: {target}")
    for problem in problems:
        print("PROBLEM:", problem)
    print("OK" if not problems else f"FAILED: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
