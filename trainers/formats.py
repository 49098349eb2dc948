"""Read example files in the common fine-tuning formats into one messages form.

Formats: OpenAI chat JSONL (``messages``), Alpaca (``instruction``/``input``/``output``, JSON or
JSONL), ShareGPT (``conversations`` of ``from``/``value``), and prompt/completion columns in CSV
or JSONL. Every record keeps the line of the file it starts on, so each problem can be shown
where the user can find it. Nothing here raises on bad content: problems become
:class:`RecordProblem`s and the rest of the file is still read.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from tunewise.errors import InputError

FORMATS = ("openai", "alpaca", "sharegpt", "prompt_completion")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "function_call": "assistant", "observation": "tool", "tool": "tool"}
PROMPT_KEYS = ("prompt", "input", "question", "text", "query")
COMPLETION_KEYS = ("completion", "output", "answer", "response", "target")


@dataclass(frozen=True)
class RecordProblem:
    line: int
    kind: str
    """invalid_json, invalid_csv, not_an_object, unknown_format, bad_structure, missing_turns, empty_turn, bad_role,
    role_order, last_not_assistant."""
    message: str
    hint: str = ""

    def to_dict(self) -> dict:
        return {"line": self.line, "kind": self.kind, "message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class Example:
    line: int
    messages: tuple[dict, ...]
    """[{"role": "system"|"user"|"assistant"|"tool", "content": str}, ...]"""

    @property
    def prompt(self) -> str:
        """Everything before the last assistant turn, as text: what duplicates and leakage compare."""
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages[:-1])

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"]


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns hold the prompt and the completion (CSV and prompt/completion JSONL)."""

    prompt: str | None = None
    completion: str | None = None
    """One column, or several comma-separated ("intent,slots"): their values become one JSON object answer."""
    system: str | None = None


@dataclass
class ParsedFile:
    format: str
    examples: list[Example] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)
    records: int = 0


# --- reading raw records with line numbers ---------------------------------------------------

def _json_array_items(text: str) -> tuple[list[tuple[int, Any]], list[RecordProblem]]:
    """Elements of a top-level JSON array with the line each starts on."""
    decoder = json.JSONDecoder()
    start = text.index("[") + 1
    items, problems, position = [], [], start

    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            break
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            problems.append(RecordProblem(line_of(error.pos), "invalid_json", f"invalid JSON: {error.msg}",
                                          "fix the syntax at this line; the records after it were not read"))
            break
        except RecursionError:
            problems.append(RecordProblem(line_of(position), "invalid_json", TOO_DEEP,
                                          "a training record is a few levels deep; the records after it were not read"))
            break
        items.append((line_of(position), value))
        position = end
    return items, problems


TOO_DEEP = "JSON nested too deeply to read"


def read_records(name: str, text: str) -> tuple[list[tuple[int, Any]], list[RecordProblem]]:
    """(line, raw record) pairs from JSON, JSONL or CSV text, and problems with the syntax.

    The file name decides: .csv is CSV, .jsonl is one record per line, .json is an array (or an
    object holding one); any other name is guessed from the first character.
    """
    stripped = text.lstrip("\ufeff")
    lower = name.lower()
    if lower.endswith(".csv"):
        return _csv_records(stripped)
    head = stripped.lstrip()
    if lower.endswith(".json") or (not lower.endswith(".jsonl") and head.startswith("[")):
        if head.startswith("["):
            return _json_array_items(stripped)
        try:
            whole = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            whole = None
        if isinstance(whole, dict):
            for key in ("data", "examples", "records", "train"):
                if isinstance(whole.get(key), list):
                    return [(1, item) for item in whole[key]], []
    records, problems = [], []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            problems.append(RecordProblem(number, "invalid_json", f"invalid JSON: {error.msg} (column {error.colno})",
                                          "each line must be one complete JSON object"))
        except RecursionError:
            problems.append(RecordProblem(number, "invalid_json", TOO_DEEP, "each line must be one chat record"))
    return records, problems


def _csv_records(text: str) -> tuple[list[tuple[int, Any]], list[RecordProblem]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records = []
    try:
        for row in reader:
            records.append((reader.line_num, dict(row)))
    except csv.Error as error:
        return records, [RecordProblem(reader.line_num, "invalid_csv", f"invalid CSV: {error}",
                                       "quote fields that contain commas or line breaks")]
    return records, []


# --- detecting and converting -----------------------------------------------------------------

def detect_format(records: list[tuple[int, Any]], mapping: ColumnMapping | None = None) -> str | None:
    """The format most of the first records fit, or None."""
    votes: dict[str, int] = {}
    for _, record in records[:50]:
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("messages"), list):
            kind = "openai"
        elif isinstance(record.get("conversations"), list):
            kind = "sharegpt"
        elif "instruction" in record and "output" in record:
            kind = "alpaca"
        elif (mapping and mapping.prompt in record) or (
                any(k in record for k in PROMPT_KEYS) and any(k in record for k in COMPLETION_KEYS)):
            kind = "prompt_completion"
        else:
            continue
        votes[kind] = votes.get(kind, 0) + 1
    return max(votes, key=votes.get) if votes else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _from_openai(record: dict) -> list[dict]:
    messages = []
    for message in _as_list(record.get("messages")):
        if not isinstance(message, dict):
            messages.append({"role": "?", "content": _text(message)})
            continue
        content = message.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not content and message.get("tool_calls"):
            content = _text(message["tool_calls"])
        messages.append({"role": str(message.get("role", "?")), "content": _text(content)})
    return messages


def _from_sharegpt(record: dict) -> list[dict]:
    messages = []
    if record.get("system"):
        messages.append({"role": "system", "content": _text(record["system"])})
    for turn in _as_list(record.get("conversations")):
        if not isinstance(turn, dict):
            messages.append({"role": "?", "content": _text(turn)})
            continue
        role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower(), f"?{turn.get('from')}")
        messages.append({"role": role, "content": _text(turn.get("value"))})
    return messages


def _from_alpaca(record: dict) -> list[dict]:
    prompt = _text(record.get("instruction")).strip()
    extra = _text(record.get("input")).strip()
    if extra:
        prompt = f"{prompt}\n\n{extra}" if prompt else extra
    messages = [{"role": "system", "content": _text(record["system"])}] if record.get("system") else []
    for pair in _as_list(record.get("history")):
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            messages += [{"role": "user", "content": _text(pair[0])}, {"role": "assistant", "content": _text(pair[1])}]
    answer = _text(record.get("output"))
    return messages + [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _from_prompt_completion(record: dict, mapping: ColumnMapping | None) -> list[dict]:
    mapping = mapping or ColumnMapping()
    prompt_key = mapping.prompt or next((k for k in PROMPT_KEYS if k in record), None)
    completion_keys = ([k.strip() for k in (mapping.completion or "").split(",") if k.strip()]
                       or [next((k for k in COMPLETION_KEYS if k in record), None)])
    messages = []
    if mapping.system and record.get(mapping.system):
        messages.append({"role": "system", "content": _text(record[mapping.system])})
    messages.append({"role": "user", "content": _text(record.get(prompt_key)) if prompt_key else ""})
    if len(completion_keys) > 1:  # several columns: one JSON answer with those present (none: an empty turn)
        present = {k: record[k] for k in completion_keys if k in record}
        answer = json.dumps(present, ensure_ascii=False) if present else ""
    else:
        answer = _text(record.get(completion_keys[0])) if completion_keys[0] else ""
    messages.append({"role": "assistant", "content": answer})
    return messages


CONVERTERS = {"openai": _from_openai, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca}


def check_messages(line: int, messages: list[dict]) -> RecordProblem | None:
    """The first structural problem of a conversation, or None."""
    if not messages or all(m["role"] == "system" for m in messages):
        return RecordProblem(line, "missing_turns", "no user or assistant turns", "add a prompt and an answer")
    for position, message in enumerate(messages, start=1):
        if message["role"] not in ("system", "user", "assistant", "tool"):
            return RecordProblem(line, "bad_role", f"turn {position} has an unknown role {message['role']!r}",
                                 "roles are system, user, assistant and tool")
        if not message["content"].strip():
            return RecordProblem(line, "empty_turn", f"turn {position} ({message['role']}) is empty",
                                 "fill it in or drop the record")
    turns = [m["role"] for m in messages]
    if "system" in turns[1:]:
        return RecordProblem(line, "role_order", "a system turn appears after the conversation started",
                             "put the system message first")
    dialogue = [r for r in turns if r != "system"]
    if dialogue[0] != "user":
        return RecordProblem(line, "role_order", f"the conversation starts with {dialogue[0]}, not user",
                             "begin with the user's message")
    for previous, current in zip(dialogue, dialogue[1:], strict=False):
        if previous == current == "user" or (previous == "user" and current == "tool"):
            return RecordProblem(line, "role_order", f"two turns in a row from {previous}", "alternate user and "
                                 "assistant (tool results follow an assistant call)")
        if previous == current == "assistant":
            # A tool call then its answer is fine in ShareGPT (function_call, observation, gpt).
            continue
    if dialogue[-1] != "assistant":
        return RecordProblem(line, "last_not_assistant", f"the last turn is from {dialogue[-1]}",
                             "end each example with the answer you want the model to give")
    return None


def parse_examples(name: str, text: str, format: str | None = None,
                   mapping: ColumnMapping | None = None) -> ParsedFile:
    """Read a file's text into examples; ``format`` overrides detection."""
    records, problems = read_records(name, text)
    detected = format or detect_format(records, mapping)
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    parsed = ParsedFile(detected or "unknown", problems=list(problems), records=len(records) + len(problems))
    for line, record in records:
        if not isinstance(record, dict):
            parsed.problems.append(RecordProblem(line, "not_an_object", "the record is not a JSON object",
                                                 "each record must be an object with named fields"))
            continue
        if detected is None:
            parsed.problems.append(RecordProblem(line, "unknown_format", "no known fields (messages, "
                                                 "conversations, instruction/output, prompt/completion)",
                                                 "choose the format and the columns by hand"))
            continue
        try:
            messages = (_from_prompt_completion(record, mapping) if detected == "prompt_completion"
                        else CONVERTERS[detected](record))
        except (TypeError, ValueError, AttributeError, KeyError) as error:  # a shape no converter expects
            parsed.problems.append(RecordProblem(line, "bad_structure", f"fields have unexpected types ({error})",
                                                 f"check the record against the {detected} format"))
            continue
        problem = check_messages(line, messages)
        if problem:
            parsed.problems.append(problem)
        else:
            parsed.examples.append(Example(line, tuple(messages)))
    parsed.problems.sort(key=lambda p: p.line)
    return parsed
