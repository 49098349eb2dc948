"""An Ollama ``Modelfile`` for an exported (merged) model folder.

Ollama imports safetensors folders of Llama-family models (``ollama create NAME -f Modelfile``),
but it reads Go templates, not the tokenizer's Jinja chat template, so the Modelfile must carry the
same prompt format and stop tokens or the model answers in a format it was never trained on. The
known formats are written out here as Go templates, each beside a Python rendering of the very
same layout, which the tests compare with the tokenizer's own template. A model whose template is
none of these gets a Modelfile without TEMPLATE and a warning saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

WHAT_OLLAMA_TAKES = ("Ollama imports a merged model folder (FROM) or a plain LoRA adapter over a Llama, Mistral or "
                     "Gemma base (ADAPTER); it has no way to run virtual tokens, prefixes or adapted attention, "
                     "so such an adapter runs only over its base in Tunewise (chat, Compare, /v1)")
"""What an Ollama Modelfile can carry (its ADAPTER instruction reads safetensors LoRA adapters only), said
wherever export refuses a method (trainers/methods.py)."""


@dataclass(frozen=True)
class PromptFormat:
    name: str
    marker: str
    """A string only this format's Jinja template contains."""
    go_template: str
    render: Callable[[list[dict]], str]
    """The Go template's output for ``messages`` (with the generation prompt), in Python."""
    stops: tuple[str, ...]
    """End of turn, then the next turn's start: where an answer must stop."""


def _chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def _llama3(messages: list[dict]) -> str:
    return ("".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>" for m in messages)
            + "<|start_header_id|>assistant<|end_header_id|>\n\n")


def _gemma(messages: list[dict]) -> str:
    turns = "".join(f"<start_of_turn>{'model' if m['role'] == 'assistant' else m['role']}\n{m['content']}"
                    "<end_of_turn>\n" for m in messages)
    return turns + "<start_of_turn>model\n"


FORMATS = (
    PromptFormat("ChatML", "<|im_start|>",
                 '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
                 '<|im_start|>assistant\n', _chatml, ("<|im_end|>", "<|im_start|>")),
    PromptFormat("Llama 3", "<|start_header_id|>",
                 '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>'
                 '{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n', _llama3,
                 ("<|eot_id|>", "<|start_header_id|>")),
    PromptFormat("Gemma", "<start_of_turn>",
                 '{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}'
                 '\n{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n', _gemma,
                 ("<end_of_turn>", "<start_of_turn>")),
)


def prompt_format(tokenizer) -> PromptFormat | None:
    """The known format the tokenizer's chat template writes, or None."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return next((f for f in FORMATS if f.marker in template), None)


def default_system(tokenizer) -> str | None:
    """The system prompt the template adds when a conversation has none (SmolLM2's does), if any."""
    fmt = prompt_format(tokenizer)
    if fmt is None:
        return None
    asked = [{"role": "user", "content": "x"}]
    rendered = tokenizer.apply_chat_template(asked, tokenize=False, add_generation_prompt=True)
    plain = fmt.render(asked)
    if rendered == plain or not rendered.endswith(plain):
        return None
    head = rendered[: len(rendered) - len(plain)]
    probe = "\u2063"  # a character no default prompt holds: where a system message's content goes
    generation_prompt = fmt.render([])
    block = fmt.render([{"role": "system", "content": probe}])[: -len(generation_prompt)]
    before, after = block.split(probe)
    if head.startswith(before) and head.endswith(after) and len(head) > len(before) + len(after):
        return head[len(before): len(head) - len(after)]
    return None


UNQUOTABLE_IN_TRIPLE_QUOTES = '"""'
"""Ollama's Modelfile parser (parser/parser.go, ``ParseFile``) has no escapes: a value ends at the
first line break where the text so far is a whole quoted string. In triple quotes that is a line
ending in three double quotes, so a value holding them would end there and its next line would be
read as a command of its own (``FROM``, ``ADAPTER``...)."""
UNQUOTABLE_IN_QUOTES = ('"', "\n", "\r")
"""In plain quotes a value ends at a line break after a double quote, so a stop string holding a
quote or a line break is left out rather than cut (a backslash is no escape there: it is kept as is)."""


def system_line(system: str) -> str | None:
    """The SYSTEM line for a default system prompt, or None when the Modelfile cannot hold it."""
    if UNQUOTABLE_IN_TRIPLE_QUOTES in system:
        return None
    return f'SYSTEM """{system}"""'


def stop_line(stop: str) -> str | None:
    """The ``PARAMETER stop`` line for a stop string, or None when the Modelfile cannot hold it."""
    if any(part in stop for part in UNQUOTABLE_IN_QUOTES):
        return None
    return f'PARAMETER stop "{stop}"'


def modelfile(tokenizer, source: str = ".") -> tuple[str, list[str]]:
    """The Modelfile text for a model folder, and warnings (an unknown template, a value left out).

    The system prompt and the end-of-sequence token come from the tokenizer, which may come from
    anywhere; a value that would end its quotes early and add commands of its own is left out, with
    a warning, instead of written (see :func:`system_line` and :func:`stop_line`).
    """
    fmt = prompt_format(tokenizer)
    lines = [f"FROM {source}"]
    warnings = []
    if fmt is None:
        warnings.append("the chat template is none of ChatML, Llama 3 or Gemma: the Modelfile has no TEMPLATE, so "
                        "Ollama uses its own guess; write a TEMPLATE that matches the tokenizer's chat template")
        return "\n".join(lines) + "\n", warnings
    lines.append(f'TEMPLATE """{fmt.go_template}"""')
    system = default_system(tokenizer)
    if system:
        line = system_line(system)
        if line is None:
            warnings.append('the default system prompt contains """, which a Modelfile cannot quote: the Modelfile '
                            "has no SYSTEM; set the system prompt in Ollama yourself")
        else:
            lines.append(line)
    eos = getattr(tokenizer, "eos_token", None)
    for stop in dict.fromkeys([*fmt.stops, *([eos] if eos else [])]):
        line = stop_line(stop)
        if line is None:
            warnings.append(f"the stop string {stop!r} contains a quote or a line break, which a Modelfile cannot "
                            "quote: it is left out, so answers may run past it")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n", warnings
