"""What training costs the model: a forgetting probe on general text and general questions.

Two measures, both scored on any causal LM (a PEFT model counts: the caller activates the adapter, or
disables all of them for the base, before calling):

- :func:`general_loss`: the mean per-token negative log-likelihood of a bundled sample of public-domain
  prose that no user's task data is about. A fine-tune that drifts away from general English raises it;
  this is the "forgetting" PEFT's own method comparison reports.
- :func:`choice_accuracy`: accuracy on bundled general multiple-choice questions (MMLU), each option
  scored by its log-likelihood after the question, as lm-evaluation-harness scores multiple choice.
  No generation, so a model that forgot how to follow the answer format is still measured on what it
  knows.

The bundled data and its licences are described in ``trainers/general_data/SOURCES.md``.

Padding: every batch here is padded on the right, whatever the tokenizer's ``padding_side`` (the
bundled model's pads on the left for generation). With right padding each real token keeps the
positions 0..n-1 it has alone and, attention being causal, never sees a pad, so a score does not depend
on what it was batched with; with left padding a plain forward (no ``position_ids``) would shift the
positions and change the scores. Pads are masked in ``attention_mask`` and never scored.

torch is imported inside the functions: importing this module costs nothing.

    .venv/bin/python bench/general_probe.py   # cost and base scores on the bundled model
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunewise.errors import InputError

DATA_DIR = Path(__file__).resolve().parent / "general_data"
TEXT_FILE = DATA_DIR / "general_text.jsonl"
"""Public-domain prose passages, one JSON object a line: {"text", "source"}."""
QUESTIONS_FILE = DATA_DIR / "general_questions.jsonl"
"""MMLU test questions, one JSON object a line: {"question", "choices", "answer", "subject", "source"}."""
Z_95 = 1.959963984540054
"""The standard normal's 97.5% quantile: a two-sided 95% interval."""
MAX_TOKENS = 1024
"""Longest sequence scored; a longer passage is cut (the bundled ones are about 100 tokens)."""


@dataclass(frozen=True)
class Question:
    """One multiple-choice question: the options in order and the index of the right one."""

    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str = ""
    source: str = ""

    def __post_init__(self):
        if len(self.choices) < 2:
            raise InputError(f"the question {self.question[:60]!r} has {len(self.choices)} choices",
                             "Give at least two.")
        if not 0 <= self.answer < len(self.choices):
            raise InputError(f"the question {self.question[:60]!r} has answer {self.answer}, not an index into "
                             f"its {len(self.choices)} choices", "Give the 0-based index of the right choice.")


@dataclass(frozen=True)
class LossResult:
    """Mean negative log-likelihood per token (nats), token-weighted over the passages."""

    loss: float
    low: float
    high: float
    """95% interval: a normal approximation for a ratio estimator (total NLL / total tokens) over
    passages, with the delta method's variance, so passages are the unit of sampling, not tokens."""
    tokens: int
    """Tokens scored (every token of every passage, the first one given the start-of-text token)."""
    passages: int
    per_passage: tuple[tuple[float, int], ...] = field(default=(), repr=False)
    """(summed NLL, tokens) for each passage in the order given: for paired comparisons between models."""

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


@dataclass(frozen=True)
class AccuracyResult:
    """Share of questions whose right option scores highest; ``accuracy`` is the length-normalised one."""

    acc: float
    """Options ranked by the summed log-likelihood of their tokens (lm-evaluation-harness's ``acc``)."""
    acc_norm: float
    """Options ranked by that sum divided by the option's length in characters (the harness's
    ``acc_norm``): the raw sum favours short options, which have fewer tokens to lose probability on."""
    low: float
    high: float
    """95% Wilson interval of ``acc_norm``."""
    n: int
    correct: tuple[bool, ...] = field(default=(), repr=False)
    """Per question, in the order given: whether ``acc_norm`` picked the right option (paired comparisons)."""

    @property
    def accuracy(self) -> float:
        return self.acc_norm


@dataclass(frozen=True)
class GeneralAbility:
    """A model's general ability: the loss on general text and the accuracy on general questions."""

    loss: LossResult
    accuracy: AccuracyResult

    @property
    def n(self) -> int:
        """Questions behind the accuracy (the loss's own n is ``loss.passages`` and ``loss.tokens``)."""
        return self.accuracy.n

    def to_dict(self) -> dict:
        """The metrics an evaluation report carries for one variant."""
        return {"general_loss": round(self.loss.loss, 4),
                "general_loss_interval": [round(self.loss.low, 4), round(self.loss.high, 4)],
                "general_loss_tokens": self.loss.tokens, "general_loss_passages": self.loss.passages,
                "general_accuracy": round(self.accuracy.acc_norm, 4),
                "general_accuracy_interval": [round(self.accuracy.low, 4), round(self.accuracy.high, 4)],
                "general_accuracy_unnormalised": round(self.accuracy.acc, 4),
                "general_n": self.n}


# ---------------------------------------------------------------- the bundled data


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise InputError(f"the general-ability data file {path} is missing",
                         "Reinstall Tunewise; the file ships inside the package.")
    rows = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((line_number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise InputError(f"{path.name}, line {line_number}: not JSON ({error.msg})",
                             "Each line must be one JSON object.") from error
    return rows


def load_general_texts(path: str | Path = TEXT_FILE, limit: int | None = None) -> list[str]:
    """The passages of general text (the bundled sample unless ``path`` names another JSONL of {"text"})."""
    texts = []
    for line_number, row in _read_jsonl(Path(path)):
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{Path(path).name}, line {line_number}: no \"text\"", "Give each line a non-empty text.")
        texts.append(text)
    return texts[:limit]


def load_general_questions(path: str | Path = QUESTIONS_FILE, limit: int | None = None) -> list[Question]:
    """The general multiple-choice questions (the bundled MMLU subset unless ``path`` names another)."""
    questions = []
    for line_number, row in _read_jsonl(Path(path)):
        try:
            questions.append(Question(question=row["question"], choices=tuple(row["choices"]),
                                      answer=int(row["answer"]), subject=row.get("subject", ""),
                                      source=row.get("source", "")))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{Path(path).name}, line {line_number}: {error}",
                             'Each line needs "question", "choices" (a list) and "answer" (an index).') from error
    return questions[:limit]


# ---------------------------------------------------------------- scoring


def wilson_interval(share: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a share observed on ``n`` cases ((0, 1) when n is 0).

    The same formula as assistant.core.outcomes; repeated here because trainers/ imports nothing above it.
    """
    if n <= 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio_interval(sums: Sequence[float], counts: Sequence[int], z: float = Z_95) -> tuple[float, float, float]:
    """(estimate, low, high) of sum(sums) / sum(counts), with passages as the sampled unit.

    The delta method's variance of a ratio estimator: the residuals ``sums[i] - estimate * counts[i]``
    carry the spread between passages, weighted by their length.
    """
    n, total = len(sums), sum(counts)
    if n == 0 or total == 0:
        return math.nan, math.nan, math.nan
    estimate = sum(sums) / total
    if n < 2:
        return estimate, estimate, estimate
    mean_count = total / n
    residual_variance = sum((s - estimate * c) ** 2 for s, c in zip(sums, counts, strict=True)) / (n - 1)
    half = z * math.sqrt(residual_variance / n) / mean_count
    return estimate, estimate - half, estimate + half


def _device_of(model):
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return "cpu"


def _start_token(tokenizer) -> int:
    """The token every passage is scored after, so its first token counts too: the beginning-of-text
    token, else the end-of-text one (lm-evaluation-harness's prefix token for rolling log-likelihood)."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    raise InputError("the tokenizer has neither a beginning- nor an end-of-text token",
                     "Use a causal LM tokenizer that defines bos_token or eos_token.")


def _sequence_logprobs(model, tokenizer, sequences: list[list[int]], batch_size: int) -> list[list[float]]:
    """For each token sequence, the log-probability of each token after the first given the ones before.

    Batches sequences of similar length together (longest first, as the harness does) and pads on the
    right (see the module docstring); results come back in the order given.
    """
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else _start_token(tokenizer)
    device = _device_of(model)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    results: list[list[float]] = [[] for _ in sequences]
    was_training = getattr(model, "training", False)
    model.eval()  # dropout off: the same model gives the same score
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                width = max(len(sequences[i]) for i in rows)
                ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for slot, i in enumerate(rows):
                    ids[slot, :len(sequences[i])] = torch.tensor(sequences[i], dtype=torch.long)
                    mask[slot, :len(sequences[i])] = 1
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                logits = logits[:, -width:].float()  # prompt-learning PEFT methods prepend virtual tokens
                targets = ids[:, 1:].to(logits.device)
                predicted = logits[:, :-1]
                token_logprobs = (predicted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                                  - torch.logsumexp(predicted, dim=-1)).cpu()
                for slot, i in enumerate(rows):
                    results[i] = token_logprobs[slot, :len(sequences[i]) - 1].tolist()
    finally:
        if was_training:
            model.train()
    return results


def general_loss(model, tokenizer, texts: Sequence[str] | None = None, batch_size: int = 8,
                 max_tokens: int = MAX_TOKENS) -> LossResult:
    """The mean per-token negative log-likelihood (nats) of ``texts`` (default: the bundled sample).

    Token-weighted: every token of every passage counts once, each passage scored on its own (no
    context from another), its first token given the start-of-text token. The 95% interval is a normal
    approximation over passages (see :attr:`LossResult.low`).

    Args:
        model: any causal LM; for a PEFT model, the adapter active now is the one measured.
        tokenizer: the model's tokenizer.
        texts: the passages; None for the bundled general text.
        batch_size: passages per forward pass. Memory grows with batch x length x vocabulary (the logits).
        max_tokens: a longer passage is cut to its first ``max_tokens`` tokens.
    """
    texts = load_general_texts() if texts is None else list(texts)
    if not texts:
        raise InputError("no texts to score", "Give at least one passage.")
    start = _start_token(tokenizer)
    sequences = [[start] + tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens - 1] for text in texts]
    logprobs = _sequence_logprobs(model, tokenizer, sequences, batch_size)
    per_passage = tuple((-sum(values), len(values)) for values in logprobs)
    loss, low, high = ratio_interval([s for s, _ in per_passage], [c for _, c in per_passage])
    return LossResult(loss=loss, low=low, high=high, tokens=sum(c for _, c in per_passage), passages=len(texts),
                      per_passage=per_passage)


def question_prompt(question: Question) -> str:
    """The context each option continues: the harness's cloze format for MMLU and ARC."""
    return f"Question: {question.question.strip()}\nAnswer:"


def option_tokens(tokenizer, context: str, option: str) -> tuple[list[int], list[int]]:
    """(context ids, option ids) as the harness splits them: the whole string is tokenized once and the
    option is what follows the context's own tokens, so a merge across the boundary cannot happen
    differently than in running text. When the context's tokens are not a prefix of the whole (a merge
    across the boundary), the two are tokenized apart."""
    continuation = " " + option.strip()
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    if whole[:len(context_ids)] == context_ids and len(whole) > len(context_ids):
        return context_ids, whole[len(context_ids):]
    return context_ids, tokenizer(continuation, add_special_tokens=False)["input_ids"]


def option_scores(model, tokenizer, questions: Sequence[Question], batch_size: int = 16,
                  max_tokens: int = MAX_TOKENS) -> list[list[float]]:
    """For each question, each option's summed log-likelihood given :func:`question_prompt`."""
    sequences, spans = [], []
    for question in questions:
        context = question_prompt(question)
        for option in question.choices:
            context_ids, option_ids = option_tokens(tokenizer, context, option)
            # No start token before the question: the harness adds none when there is a context.
            ids = (context_ids + option_ids)[-max_tokens:]  # cut from the left: the option stays whole
            sequences.append(ids)
            spans.append(len(option_ids))
    logprobs = _sequence_logprobs(model, tokenizer, sequences, batch_size)
    flat = [sum(values[len(values) - span:]) for values, span in zip(logprobs, spans, strict=True)]
    scores, at = [], 0
    for question in questions:
        scores.append(flat[at:at + len(question.choices)])
        at += len(question.choices)
    return scores


def choice_accuracy(model, tokenizer, questions: Sequence[Question] | None = None, batch_size: int = 16,
                    max_tokens: int = MAX_TOKENS) -> AccuracyResult:
    """Accuracy on multiple-choice ``questions`` (default: the bundled MMLU subset), no generation.

    Each option is scored by the summed log-likelihood of its tokens after "Question: ...\\nAnswer:",
    one forward pass per (question, option) row, as lm-evaluation-harness does. Both of the harness's
    accuracies are kept: ``acc`` (the raw sum) and ``acc_norm`` (the sum divided by the option's length
    in characters). ``acc_norm`` is the headline because the raw sum prefers short options whatever
    they say; its 95% interval is Wilson's.

    Args:
        model: any causal LM; for a PEFT model, the adapter active now is the one measured.
        tokenizer: the model's tokenizer.
        questions: the questions; None for the bundled ones.
        batch_size: (question, option) rows per forward pass.
        max_tokens: a longer row loses the start of its question.
    """
    questions = load_general_questions() if questions is None else list(questions)
    if not questions:
        raise InputError("no questions to score", "Give at least one question.")
    scores = option_scores(model, tokenizer, questions, batch_size=batch_size, max_tokens=max_tokens)
    raw_hits, normalised = [], []
    for question, option_logprobs in zip(questions, scores, strict=True):
        lengths = [len(" " + option.strip()) for option in question.choices]
        raw_hits.append(_argmax(option_logprobs) == question.answer)
        normalised.append(_argmax([s / n for s, n in zip(option_logprobs, lengths, strict=True)]) == question.answer)
    n = len(questions)
    acc, acc_norm = sum(raw_hits) / n, sum(normalised) / n
    low, high = wilson_interval(acc_norm, n)
    return AccuracyResult(acc=acc, acc_norm=acc_norm, low=low, high=high, n=n, correct=tuple(normalised))


def _argmax(values: Sequence[float]) -> int:
    """The first index of the largest value (ties go to the earlier option, as numpy's argmax)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def general_ability(model, tokenizer, texts: Sequence[str] | None = None,
                    questions: Sequence[Question] | None = None, batch_size: int = 16) -> GeneralAbility:
    """Both measures on the bundled data (or the given texts and questions)."""
    return GeneralAbility(loss=general_loss(model, tokenizer, texts, batch_size=batch_size),
                          accuracy=choice_accuracy(model, tokenizer, questions, batch_size=batch_size))
