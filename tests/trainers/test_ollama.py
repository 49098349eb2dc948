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
