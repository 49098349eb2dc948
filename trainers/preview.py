"""What the training job will see of an example: the text after the chat template, its tokens,
and which of them count in the loss.

Why: a wrong chat template or an answer cut by ``max_length`` ruins a fine-tune silently (the loss
still falls). This mirrors the job (trainers/sft.py): with a template that marks assistant turns
(``{% generation %}``) every assistant turn is trained (TRL's ``assistant_only_loss``); otherwise
the conversation is a prompt (every turn but the last, with the generation prompt) and a
completion (the last turn), and only the completion is trained (TRL's completion-only loss).
Tokens past ``max_length`` are cut, as TRL cuts them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


def has_generation_markers(tokenizer) -> bool:
    """Whether the chat template marks assistant turns, so TRL can mask every other token."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return "{% generation %}" in template or "{%- generation %}" in template


@dataclass(frozen=True)
class TokenPiece:
    """A run of consecutive tokens that are all trained or all not (decoded together, so a
    character split across tokens stays whole)."""

    text: str
    trained: bool
    """True when these tokens count in the loss."""
    tokens: int


@dataclass
class ExamplePreview:
    index: int
    text: str
    """The whole example after the chat template, before any cut."""
    pieces: list[TokenPiece]
    """The tokens kept (at most max_length), in runs marked trained or not."""
    tokens: int
    """Tokens before the cut."""
    trained_tokens: int
    masking: str
    """"assistant turns" (generation markers) or "last answer" (prompt/completion)."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def marked_text(self, start: str = "[[", end: str = "]]") -> str:
        """The kept text with each trained run wrapped in ``start``/``end`` (how the CLI shows it)."""
        out, inside = [], False
        for piece in self.pieces:
            if piece.trained != inside:
                out.append(start if piece.trained else end)
                inside = piece.trained
            out.append(piece.text)
        if inside:
            out.append(end)
        return "".join(out)


NO_MARKERS_HINT = ("the chat template has no {% generation %} markers, so only each example's last answer is "
                   "trained; earlier assistant turns are context. To train every assistant turn, use a template "
                   "with the markers around assistant content (end-of-turn token inside), or split the "
                   "conversations so each answer is a last turn")


def preview_example(tokenizer, messages: list[dict], max_length: int, index: int = 0) -> ExamplePreview:
    """One example as the job will train on it."""
    messages = [dict(m) for m in messages]
    warnings: list[str] = []
    if has_generation_markers(tokenizer):
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
        ids = list(encoded["input_ids"])
        mask = [bool(m) for m in encoded["assistant_masks"]]
        masking = "assistant turns"
    else:
        prompt_ids = list(tokenizer.apply_chat_template(messages[:-1], tokenize=True, add_generation_prompt=True,
                                                        return_dict=True)["input_ids"])
        ids = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        if ids[:len(prompt_ids)] != prompt_ids:
            warnings.append("the template renders the prompt differently on its own than inside the whole "
                            "conversation, so the boundary between prompt and answer is approximate")
        mask = [False] * len(prompt_ids) + [True] * (len(ids) - len(prompt_ids))
        masking = "last answer"
        if sum(1 for m in messages if m.get("role") == "assistant") > 1:
            warnings.append(NO_MARKERS_HINT)
    text = tokenizer.decode(ids, skip_special_tokens=False)
    kept = list(zip(ids[:max_length], mask[:max_length], strict=True))
    trained_total, trained_kept = sum(mask), sum(m for _, m in kept)
    if trained_total == 0:
        warnings.append("no token of this example is trained: it has no assistant answer")
    elif trained_kept == 0:
        warnings.append(f"the answer starts after max_length ({max_length} tokens): the job drops this example; "
                        f"raise max_length to at least {len(ids)} or shorten the prompt")
    elif trained_kept < trained_total:
        warnings.append(f"the answer is cut: {trained_total - trained_kept} of its {trained_total} tokens lie past "
                        f"max_length ({max_length}); raise max_length to at least {len(ids)} or shorten the example")
    pieces, run = [], []
    for position, (token, trained) in enumerate(kept):
        run.append(token)
        if position + 1 == len(kept) or kept[position + 1][1] != trained:
            pieces.append(TokenPiece(tokenizer.decode(run, skip_special_tokens=False), trained, len(run)))
            run = []
    return ExamplePreview(index, text, pieces, len(ids), trained_kept, masking, warnings)


def preview_examples(tokenizer, conversations: list[list[dict]], max_length: int,
                     count: int = 3) -> list[ExamplePreview]:
    """The first ``count`` examples as the job will train on them."""
    return [preview_example(tokenizer, messages, max_length, i) for i, messages in enumerate(conversations[:count])]
