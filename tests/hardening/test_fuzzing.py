"""Property-based tests: no input to the parsers and loaders lets a traceback reach the user."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.core import interview
from retrieval.documents import DocumentError
from retrieval.loaders import SUPPORTED_SUFFIXES, iter_zip, load_bytes
from trainers.formats import FORMATS, parse_examples
from trainers.validation import build_report

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)
record_keys = st.sampled_from(["messages", "conversations", "instruction", "input", "output", "prompt",
                               "completion", "role", "content", "from", "value", "system", "history"])
records = st.dictionaries(record_keys, json_values, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(records | json_values, max_size=8), fmt=st.sampled_from([None, *FORMATS]))
def test_any_jsonl_content_parses_into_examples_or_problems(lines, fmt):
    text = "\n".join(json.dumps(line) for line in lines)
    parsed = parse_examples("data.jsonl", text, fmt)
    assert len(parsed.examples) + len(parsed.problems) == len(lines)  # one outcome per record
    report = build_report(parsed)
    assert report.valid == len(parsed.examples)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), name=st.sampled_from(["a.jsonl", "a.json", "a.csv"]))
def test_any_text_in_any_example_file_is_handled(text, name):
    parsed = parse_examples(name, text)
    assert all(p.line >= 1 for p in parsed.problems)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000), suffix=st.sampled_from(list(SUPPORTED_SUFFIXES) + [".zip", ".exe"]))
def test_any_bytes_under_any_name_load_or_fail_with_a_document_error(data, suffix):
    name = f"upload{suffix}"
    if suffix == ".zip":
        for _entry, content in iter_zip(name, data):
            assert isinstance(content, (bytes, DocumentError))
        return
    try:
        document = load_bytes(name, data)
    except DocumentError as error:
        assert name in str(error)
    else:
        assert document.text.strip()


@settings(max_examples=100, deadline=None)
@given(messages=st.lists(st.text(max_size=40), max_size=15))
def test_any_conversation_keeps_the_interview_consistent(messages):
    state = interview.start()
    for message in messages:
        turn = interview.respond(state, message)
        assert turn.reply
        assert set(turn.state.answers) <= set(interview.SLOTS)
        turn.state.profile()  # always a valid profile
        state = turn.state
