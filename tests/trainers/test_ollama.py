"""The Modelfile carries the prompt format the tokenizer's own chat template writes."""

import re

import pytest

from trainers.ollama import FORMATS, modelfile, prompt_format

CONVERSATION = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "play jazz"},
                {"role": "assistant", "content": "{\"intent\": \"PlayMusic\"}"}, {"role": "user", "content": "louder"}]


@pytest.fixture(scope="module")
def bundled_tokenizer():
    from transformers import AutoTokenizer

    from assistant.runtime.models import BUNDLED_MODEL, resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(BUNDLED_MODEL))


def test_the_bundled_models_template_is_chatml_and_renders_like_the_tokenizer(bundled_tokenizer):
    fmt = prompt_format(bundled_tokenizer)
    assert fmt.name == "ChatML"
    expected = bundled_tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert fmt.render(CONVERSATION) == expected


def test_the_modelfile_keeps_the_default_system_prompt_and_the_stop_tokens(bundled_tokenizer):
    text, warnings = modelfile(bundled_tokenizer)
    assert not warnings
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in text
    assert text.count("PARAMETER stop") == 2 and 'PARAMETER stop "<|im_end|>"' in text


def test_the_tiny_models_marked_template_renders_the_same_text(tiny_model_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_path))
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert prompt_format(tokenizer).render(CONVERSATION) == rendered
    assert "SYSTEM" not in modelfile(tokenizer)[0]  # this template adds no default system prompt


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_every_go_template_is_well_formed(fmt):
    """Each {{ range }} and {{ if }} is closed, and only Ollama's message fields are used."""
    opened = len(re.findall(r"\{\{-?\s*(range|if)\b", fmt.go_template))
    assert opened == len(re.findall(r"\{\{-?\s*end\s*\}\}", fmt.go_template))
    assert set(re.findall(r"\.(\w+)", fmt.go_template)) <= {"Messages", "Role", "Content"}


def test_an_unknown_template_gets_no_template_and_a_warning():
    class Plain:
        chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
        eos_token = "</s>"

    text, warnings = modelfile(Plain())
    assert text == "FROM .\n" and "none of ChatML, Llama 3 or Gemma" in warnings[0]


def ollama_commands(text: str) -> list[tuple[str, str]]:
    """The (command, value) pairs Ollama reads from a Modelfile: a port of its parser's rules
    (ollama/ollama parser/parser.go, ``ParseFile``/``unquote``). No escapes; a value runs on past a
    line break until the text so far, trimmed, is a whole quoted ("..." or triple-quoted) string."""
    def unquote(value: str) -> str | None:
        if value.startswith('"""'):
            return value[3:-3] if len(value) >= 6 and value.endswith('"""') else None
        if value.startswith('"'):
            return value[1:-1] if len(value) >= 2 and value.endswith('"') else None
        return value

    commands, state, buffer, name = [], "nil", "", ""
    for char in text:
        if state == "nil" and char not in " \t\r\n":
            state, buffer = ("comment", "") if char == "#" else ("name", char)
        elif state == "comment" and char in "\r\n":
            state = "nil"
        elif state in ("name", "parameter"):
            if char in " \t":
                name, buffer = buffer.lower(), ""
                state = "parameter" if (state, name) == ("name", "parameter") else "value"
            else:
                buffer += char
        elif state == "value":
            value = unquote(buffer.strip()) if char in "\r\n" else None
            if value is None:
                buffer += char
            else:
                commands.append((name, value))
                state, buffer = "nil", ""
    if state == "value":
        commands.append((name, unquote(buffer.strip())))
    return commands


def test_the_parser_port_reads_a_plain_modelfile_as_ollama_does():
    text = 'FROM .\nTEMPLATE """a\nb"""\nSYSTEM """say "hi"\nFROM nowhere"""\nPARAMETER stop "<|im_end|>"\n'
    assert ollama_commands(text) == [("from", "."), ("template", "a\nb"), ("system", 'say "hi"\nFROM nowhere'),
                                     ("stop", "<|im_end|>")]


class ChatmlTokenizer:
    """A ChatML tokenizer whose template adds ``system`` as the default system prompt, and whose end
    token is ``eos``: both come from the tokenizer's files, which an exported model may take from anyone."""

    chat_template = "<|im_start|>"

    def __init__(self, system: str, eos: str):
        self.system, self.eos_token = system, eos

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return FORMATS[0].render([{"role": "system", "content": self.system}, *messages])


INJECTED = "\nFROM /attacker/weights\nADAPTER /attacker/adapter\nTEMPLATE {{ .Prompt }}\nPARAMETER num_ctx 1"


@pytest.mark.parametrize("system, eos", [
    ('Be brief."""' + INJECTED + '\nSYSTEM """', "<|im_end|>"),
    ('Be brief."""' + INJECTED, "<|im_end|>"),
    ("Be brief.", '</s>"' + INJECTED + '\nPARAMETER stop "'),
    ("Be brief.", '</s>"' + INJECTED),
    ("Be brief.", '</s>"\r' + INJECTED.replace("\n", "\r")),
], ids=["system closes its quotes", "system closes its quotes, unbalanced", "stop closes its quotes",
        "stop closes its quotes, unbalanced", "stop with carriage returns"])
def test_a_hostile_system_prompt_or_stop_token_adds_no_command(system, eos):
    text, warnings = modelfile(ChatmlTokenizer(system, eos))
    commands = ollama_commands(text)
    assert [name for name, _ in commands if name in ("from", "adapter", "template")] == ["from", "template"]
    assert ("from", ".") in commands and ("template", FORMATS[0].go_template) in commands
    assert not any(name == "num_ctx" for name, _ in commands)
    assert any("left out" in warning or "no SYSTEM" in warning for warning in warnings)


def test_a_value_left_out_is_named_in_a_warning_and_the_rest_is_kept():
    text, warnings = modelfile(ChatmlTokenizer('Answer in """triple quotes""".', 'end"'))
    assert "SYSTEM" not in text and 'contains """' in warnings[0] and "no SYSTEM" in warnings[0]
    assert "'end\"'" in warnings[1] and "left out" in warnings[1]
    assert ollama_commands(text)[2:] == [("stop", "<|im_end|>"), ("stop", "<|im_start|>")]


@pytest.mark.parametrize("system, eos", [
    ("Line one.\nFROM now on, answer in French.", "</s>"),
    ('Quote "this" and end with a quote"', "</s>"),
    ("Be brief.", "<\\s>"),
])
def test_a_system_prompt_on_several_lines_or_with_quotes_reaches_ollama_unchanged(system, eos):
    text, warnings = modelfile(ChatmlTokenizer(system, eos))
    assert not warnings
    assert ollama_commands(text) == [("from", "."), ("template", FORMATS[0].go_template), ("system", system),
                                     ("stop", "<|im_end|>"), ("stop", "<|im_start|>"), ("stop", eos)]
