"""Every format imports into messages; every problem is reported with its line and a hint."""

import json

import pytest

from tests.paths import SHARED_DATA
from tests.snips import snips_chat_jsonl
from trainers.formats import ColumnMapping, parse_examples
from trainers.splits import mix_general, split_examples
from trainers.validation import build_report

FORMATS_DIR = SHARED_DATA / "formats"


@pytest.mark.parametrize("name, fmt, count", [
    ("identity.json", "alpaca", 91),
    ("glaive_toolcall_en_demo.json", "sharegpt", 300),
    ("identity_openai_messages.jsonl", "openai", 91),
])
def test_shared_format_samples_import_with_the_right_counts(name, fmt, count):
    parsed = parse_examples(name, (FORMATS_DIR / name).read_text(encoding="utf-8"))
    assert parsed.format == fmt
    assert parsed.records == count
    assert len(parsed.examples) + len(parsed.problems) == count
    assert len(parsed.examples) >= 0.95 * count, parsed.problems[:3]
    assert all(e.messages[-1]["role"] == "assistant" for e in parsed.examples)


def test_sharegpt_tool_calls_keep_their_roles():
    parsed = parse_examples("g.json", (FORMATS_DIR / "glaive_toolcall_en_demo.json").read_text())
    roles = {m["role"] for e in parsed.examples for m in e.messages}
    assert {"user", "assistant", "tool"} <= roles


def test_alpaca_and_openai_copies_of_identity_give_the_same_examples():
    alpaca = parse_examples("identity.json", (FORMATS_DIR / "identity.json").read_text())
    openai = parse_examples("identity.jsonl", (FORMATS_DIR / "identity_openai_messages.jsonl").read_text())
    assert [e.messages for e in alpaca.examples] == [e.messages for e in openai.examples]


def test_csv_with_a_column_mapping():
    text = "question,reply,notes\nWhat is 2+2?,4,easy\nCapital of France?,Paris,\n"
    parsed = parse_examples("qa.csv", text, mapping=ColumnMapping(prompt="question", completion="reply"))
    assert parsed.format == "prompt_completion"
    assert [(e.line, e.prompt, e.answer) for e in parsed.examples] == [
        (2, "user: What is 2+2?", "4"), (3, "user: Capital of France?", "Paris")]


def test_format_override():
    text = '{"prompt": "hi", "completion": "hello"}\n'
    assert parse_examples("x.jsonl", text, format="prompt_completion").examples[0].answer == "hello"
    with pytest.raises(ValueError, match="unknown format"):
        parse_examples("x.jsonl", text, format="yaml")


def _msgs(*pairs):
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in pairs]})


BAD_RECORDS = [
    ('{"messages": [', "invalid_json"),
    ("[1, 2]", "not_an_object"),
    ('{"foo": "bar"}', "unknown_format"),
    (_msgs(("system", "be nice")), "missing_turns"),
    (_msgs(("user", "hi"), ("assistant", "   ")), "empty_turn"),
    (_msgs(("user", "hi"), ("robot", "beep")), "bad_role"),
    (_msgs(("assistant", "hello"), ("user", "hi"), ("assistant", "ok")), "role_order"),
    (_msgs(("user", "a"), ("user", "b"), ("assistant", "c")), "role_order"),
    (_msgs(("user", "hi"), ("assistant", "ok"), ("system", "late")), "role_order"),
    (_msgs(("user", "hi"), ("assistant", "ok"), ("user", "thanks")), "last_not_assistant"),
]


@pytest.mark.parametrize("line, kind", BAD_RECORDS, ids=[k for _, k in BAD_RECORDS])
def test_each_error_kind_names_its_line(line, kind):
    good = _msgs(("user", "ok?"), ("assistant", "ok"))
    text = "\n".join([good, good.replace("ok?", "fine?"), line, good.replace("ok?", "yes?")]) + "\n"
    parsed = parse_examples("data.jsonl", text, format="openai" if kind == "unknown_format" else None)
    if kind == "unknown_format":
        parsed = parse_examples("data.jsonl", line + "\n")
        assert parsed.problems[0].kind == kind
        return
    problems = [p for p in parsed.problems if p.line == 3]
    assert [p.kind for p in problems] == [kind]
    assert problems[0].hint
    assert [e.line for e in parsed.examples] == [1, 2, 4]


def test_duplicates_conflicts_tokens_and_labels():
    rows = [("Is this spam? win money", "spam"), ("is this spam? win money ", "spam"),
            ("is this SPAM?  win money!", "spam"), ("Hello friend", "ham"), ("Hello friend", "spam")]
    text = "\n".join(json.dumps({"prompt": p, "completion": c}) for p, c in rows) + "\n"
    report = build_report(parse_examples("d.jsonl", text), max_length=5)
    assert {"kind": "exact", "lines": [1, 2]} in report.duplicates
    assert any(d["kind"] == "near" and 3 in d["lines"] for d in report.duplicates)
    assert report.conflicts == [{"lines": [4, 5], "answers": 2}]
    assert report.labels == {"spam": 4, "ham": 1}
    assert report.tokens.max >= report.tokens.p95 >= report.tokens.median >= report.tokens.min > 0
    assert report.tokens.over_max_length == 5
    assert report.tokens.answer_cut_off == 5  # each prompt alone is over 5 tokens: no room for any answer


def test_snips_leakage_is_the_eight_shared_texts():
    train = parse_examples("snips_train.jsonl", snips_chat_jsonl("train"))
    test = parse_examples("snips_test.jsonl", snips_chat_jsonl("test"))
    assert (len(train.examples), len(test.examples)) == (2100, 700)
    report = build_report(train, test)
    exact = [p for p in report.leakage if p["kind"] == "exact"]
    assert len(exact) == 8  # as SOURCES.md counts them
    assert len(report.leakage) == 12  # plus 4 that differ only in punctuation or spacing
    assert all({"train_line", "eval_line"} <= set(p) for p in report.leakage)


def test_split_is_seeded_disjoint_and_keeps_prompts_together():
    parsed = parse_examples("s.jsonl", snips_chat_jsonl("train", limit=300))
    a, b = split_examples(parsed.examples, 0.2, seed=1), split_examples(parsed.examples, 0.2, seed=1)
    assert [e.line for e in a.eval] == [e.line for e in b.eval]
    assert {e.prompt for e in a.train}.isdisjoint({e.prompt for e in a.eval})
    assert len(a.train) + len(a.eval) == 300 and 55 <= len(a.eval) <= 65
    assert [e.line for e in split_examples(parsed.examples, 0.2, seed=2).eval] != [e.line for e in a.eval]


def test_general_data_is_mixed_at_about_ten_percent():
    task = parse_examples("s.jsonl", snips_chat_jsonl("train", limit=180)).examples
    general = parse_examples("identity.json", (FORMATS_DIR / "identity.json").read_text()).examples
    mixed = mix_general(task, general, 0.1, seed=0)
    assert len(mixed) == 200 and sum(e in general for e in mixed) == 20


def test_validate_cli_prints_the_report_as_json(tmp_path, capsys):
    from ui.cli import main

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text(snips_chat_jsonl("train") + "{broken\n")
    test.write_text(snips_chat_jsonl("test"))
    assert main(["validate", str(train), "--eval", str(test), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"format", "records", "valid", "errors", "duplicates", "conflicts", "leakage", "tokens"} <= set(report)
    assert report["format"] == "openai" and report["records"] == 2101 and report["valid"] == 2100
    assert report["errors"] == [{"line": 2101, "kind": "invalid_json", "message": report["errors"][0]["message"],
                                 "hint": report["errors"][0]["hint"]}]
    assert len([p for p in report["leakage"] if p["kind"] == "exact"]) == 8


def _snips_of_intents(*counts: tuple[str, int]) -> str:
    """Snips training examples, the first ``n`` of each named intent, as chat JSONL."""
    lines = snips_chat_jsonl("train").splitlines()
    chosen = []
    for intent, n in counts:
        chosen += [line for line in lines if json.loads(json.loads(line)["messages"][-1]["content"])["intent"]
                   == intent][:n]
    return "\n".join(chosen) + "\n"


def test_sixty_snips_examples_of_one_intent_warn_that_the_adapter_will_always_answer_it():
    report = build_report(parse_examples("s.jsonl", _snips_of_intents(("PlayMusic", 60))))
    assert report.valid == 60
    assert [w["message"] for w in report.warnings] == [
        "all 60 examples have intent=PlayMusic: the adapter will learn to always answer PlayMusic; add examples of "
        "the other labels"]
    assert report.warnings[0] | {"message": ""} == {"kind": "dominant_label", "field": "intent", "value": "PlayMusic",
                                                   "count": 60, "total": 60, "message": ""}


def test_snips_with_nearly_one_intent_warns_and_a_balanced_sample_does_not():
    nearly = build_report(parse_examples("s.jsonl", _snips_of_intents(("PlayMusic", 57), ("GetWeather", 3))))
    assert [w["message"].split(":")[0] for w in nearly.warnings] == ["57 of 60 examples (95%) have intent=PlayMusic"]
    balanced = build_report(parse_examples("s.jsonl", snips_chat_jsonl("train", limit=300, seed=0)))
    assert balanced.warnings == []


def _completions(*answers: str) -> str:
    return "\n".join(json.dumps({"prompt": f"input {i}", "completion": a}) for i, a in enumerate(answers)) + "\n"


LABEL_BALANCE = [
    ("one label", ["spam"] * 5, ["all 5 examples answer spam: the adapter will learn to always answer spam"]),
    ("19 of 20", ["spam"] * 19 + ["ham"], ["19 of 20 examples (95%) answer spam: the adapter will learn to almost "
                                           "always answer spam"]),
    ("18 of 20", ["spam"] * 18 + ["ham"] * 2, ["18 of 20 examples (90%) answer spam"]),
    ("17 of 20", ["spam"] * 17 + ["ham"] * 3, []),
    ("18 of 19: too few for a share", ["spam"] * 18 + ["ham"], []),
    ("a single example", ["spam"], []),
    ("JSON booleans", [json.dumps({"intent": i, "urgent": True}) for i in ("a", "b", "c")],
     ["all 3 examples have urgent=true"]),
    ("JSON free text is no label", [json.dumps({"summary": "the same long summary of the whole text"})] * 30, []),
    ("free-text answers", [f"a sentence of more than four words, number {i}" for i in range(30)], []),
]


@pytest.mark.parametrize("answers, expected", [case[1:] for case in LABEL_BALANCE],
                         ids=[case[0] for case in LABEL_BALANCE])
def test_a_label_on_nearly_every_example_is_warned_about(answers, expected):
    report = build_report(parse_examples("d.jsonl", _completions(*answers)))
    assert len(report.warnings) == len(expected)
    for warning, start in zip(report.warnings, expected, strict=True):
        assert warning["message"].startswith(start) and warning["message"].endswith("add examples of the other labels")


@pytest.mark.parametrize("content, words", [("", "is empty"), ("{broken\n", "has no valid examples")])
def test_validate_says_when_there_is_nothing_to_train_on(tmp_path, capsys, content, words):
    from ui.cli import main

    train = tmp_path / "train.jsonl"
    train.write_text(content)
    assert main(["validate", str(train)]) == 2
    assert f"train.jsonl {words}: there is nothing to train on" in capsys.readouterr().err


def test_a_line_nested_too_deeply_is_a_line_numbered_problem_not_a_crash():
    deep = "[" * 100_000 + "]" * 100_000
    parsed = parse_examples("train.jsonl", snips_chat_jsonl("train", limit=2) + deep + "\n")
    assert len(parsed.examples) == 2
    assert [(p.line, p.kind) for p in parsed.problems] == [(3, "invalid_json")]
    assert "nested too deeply" in parsed.problems[0].message
