"""An LLM judge, and how far to trust it: its agreement with the user's own blind votes.

A judge is any chat model Tunewise can load, or any OpenAI-compatible URL. It compares two answers
to one prompt with a written rubric and says A, B or tie with a reason. Each pair is judged in
both orders; a judge that changes its mind when the answers swap places is showing position bias,
and that pair counts as a tie. Over the pairs the user voted on blind, the judge's verdicts are
compared with the votes: percent agreement and Cohen's kappa, with n (assistant/core/agreement.py).
The rubric, every verdict and every reason are saved with the result.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from assistant.core.agreement import agreement
from assistant.core.errors import TunewiseError

RUBRIC = ("You are a strict judge comparing two answers to the same request. The better answer is correct, "
          "does what was asked (including any required format), and is clear and concise. Length is not "
          "quality. If a reference answer is given, agreement with it matters most. If neither is better, "
          "say tie.\nReply with exactly two lines:\nVerdict: A, B or tie\nReason: one sentence")
VERDICT = re.compile(r"verdict\s*[:\-]?\s*\**\s*(a|b|tie)\b", re.IGNORECASE)


class JudgeError(TunewiseError):
    """The judge could not be asked (a URL that does not answer, a model that does not load)."""


class ChatJudge(Protocol):
    name: str

    def complete(self, messages: list[dict]) -> str:
        """The judge's reply to a conversation."""


class ModelJudge:
    """A chat model Tunewise loaded (assistant.runtime.generation.LoadedModel), answering greedily."""

    def __init__(self, loaded, max_new_tokens: int = 96):
        self.loaded = loaded
        self.name = loaded.name
        self.max_new_tokens = max_new_tokens

    def complete(self, messages: list[dict]) -> str:
        from assistant.runtime.generation import BASE, GenerationSettings, chat

        adapter = BASE if hasattr(self.loaded.model, "disable_adapter") else None
        return chat(self.loaded, messages, GenerationSettings(max_new_tokens=self.max_new_tokens), adapter)


class HttpJudge:
    """Any OpenAI-compatible chat endpoint (``URL`` is the API's base, e.g. http://host:8000/v1)."""

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.model = model
        self.name = f"{model} at {self.url}"
        self.api_key = api_key
        self.timeout = timeout

    def complete(self, messages: list[dict]) -> str:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": 200}
        try:
            response = httpx.post(f"{self.url}/chat/completions", json=body, headers=headers, timeout=self.timeout)
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"] or ""
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as error:
            raise JudgeError(f"the judge at {self.url} did not answer: {error}",
                             "give the base URL of an OpenAI-compatible API (ending in /v1) and a model it serves"
                             ) from error


def parse_verdict(reply: str) -> tuple[str | None, str]:
    """("a" | "b" | "tie" | None when unreadable, the reason line or the whole reply)."""
    found = VERDICT.search(reply or "")
    reason = next((line.split(":", 1)[1].strip() for line in (reply or "").splitlines()
                   if line.lower().lstrip("* ").startswith("reason")), (reply or "").strip())
    return (found.group(1).lower() if found else None), reason


def ask(judge: ChatJudge, prompt: str, first: str, second: str, reference: str | None = None) -> tuple[str | None, str]:
    """One verdict on (A=first, B=second)."""
    parts = [f"Request:\n{prompt}"]
    if reference:
        parts.append(f"Reference answer:\n{reference}")
    parts += [f"Answer A:\n{first}", f"Answer B:\n{second}"]
    reply = judge.complete([{"role": "system", "content": RUBRIC}, {"role": "user", "content": "\n\n".join(parts)}])
    return parse_verdict(reply)


SWAPPED = {"a": "b", "b": "a", "tie": "tie", None: None}


@dataclass(frozen=True)
class PairJudgement:
    outcome: str
    """"a", "b" or "tie": the verdict both orders agree on; tie when they disagree or cannot be read."""
    as_shown: str | None
    """The verdict with the answers in the voted order."""
    swapped: str | None
    """The verdict with the answers swapped, mapped back to the voted order."""
    reasons: tuple[str, str]

    @property
    def consistent(self) -> bool:
        return self.as_shown is not None and self.as_shown == self.swapped


def judge_pair(judge: ChatJudge, prompt: str, answer_a: str, answer_b: str,
               reference: str | None = None) -> PairJudgement:
    """Judge a pair in both orders; only a verdict that survives the swap counts."""
    shown, why_shown = ask(judge, prompt, answer_a, answer_b, reference)
    swapped, why_swapped = ask(judge, prompt, answer_b, answer_a, reference)
    swapped = SWAPPED[swapped]
    outcome = shown if shown is not None and shown == swapped else "tie"
    return PairJudgement(outcome, shown, swapped, (why_shown, why_swapped))


def vote_label(outcome: str) -> str:
    """A vote as a judge can give it: "both bad" says neither is better, a tie."""
    return "tie" if outcome == "both_bad" else outcome


@dataclass
class JudgeAgreement:
    judge: str
    rubric: str
    votes: int
    percent: float
    kappa: float | None
    consistent_percent: float
    """Pairs whose verdict survived swapping the answers (100 - this is the position bias seen)."""
    items: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if not self.votes:
            return "No blind votes yet: vote on a few pairs, then check the judge against them."
        kappa = "undefined" if self.kappa is None else f"{self.kappa:.2f}"
        return (f"The judge ({self.judge}) agrees with your blind votes on {self.percent:.0f}% of {self.votes} "
                f"pairs; Cohen's kappa {kappa} (0 is chance, 1 is perfect). It gave the same verdict with the "
                f"answers swapped on {self.consistent_percent:.0f}% of them.")


def check_against_votes(judge: ChatJudge, votes: Sequence, progress=None) -> JudgeAgreement:
    """The judge on every voted pair (arena.Vote with its prompt and both answers), against the votes."""
    items, judged, voted = [], [], []
    usable = [v for v in votes if v.prompt and (v.answer_a or v.answer_b)]
    for position, vote in enumerate(usable):
        if progress:
            progress(position / max(len(usable), 1), f"pair {position + 1} of {len(usable)}")
        verdict = judge_pair(judge, vote.prompt, vote.answer_a, vote.answer_b)
        judged.append(verdict.outcome)
        voted.append(vote_label(vote.outcome))
        items.append({"prompt": vote.prompt, "variant_a": vote.variant_a, "variant_b": vote.variant_b,
                      "vote": vote.outcome, "judge": verdict.outcome, "as_shown": verdict.as_shown,
                      "swapped": verdict.swapped, "reasons": list(verdict.reasons)})
    measured = agreement(voted, judged)
    consistent = sum(1 for i in items if i["as_shown"] is not None and i["as_shown"] == i["swapped"])
    return JudgeAgreement(judge.name, RUBRIC, measured.n, measured.percent, measured.kappa,
                          round(100 * consistent / len(items), 1) if items else 0.0, items)


AGREEMENT_FILE = "judge-agreement.json"


def check_project_judge(workspace, project: str, judge: ChatJudge, progress=None) -> JudgeAgreement:
    """The judge against the project's blind votes; saved with its rubric, verdicts and reasons in
    the project folder (``judge-agreement.json``), where the Compare tab shows it beside the leaderboard."""
    from assistant.services.arena import VoteStore
    from assistant.services.workspace import atomic_write_json

    folder = workspace.project(project).path
    if not workspace.exists(project):
        raise JudgeError(f"there is no project named {project!r}")
    store = VoteStore(folder / "tunewise.sqlite")
    try:
        votes = store.votes()
    finally:
        store.close()
    result = check_against_votes(judge, votes, progress)
    atomic_write_json(folder / AGREEMENT_FILE, result.to_dict())
    return result


def saved_agreement(workspace, project: str) -> JudgeAgreement | None:
    """The last saved check of the judge for a project, if any."""
    import json

    path = workspace.project(project).path / AGREEMENT_FILE
    if not path.is_file():
        return None
    return JudgeAgreement(**json.loads(path.read_text(encoding="utf-8")))


SCORE_RUBRIC = ("You are a strict judge grading one answer against a reference answer. Score 5 when the answer "
                "is correct and complete (it says what the reference says, in the format asked for), 3 when it "
                "is partly right, 1 when it is wrong or off-task. Wording may differ from the reference.\n"
                "Reply with exactly two lines:\nScore: 1 to 5\nReason: one sentence")
SCORE = re.compile(r"score\s*[:\-]?\s*\**\s*([1-5])\b", re.IGNORECASE)


def score_answer(judge: ChatJudge, prompt: str, reference: str, answer: str) -> tuple[int | None, str]:
    """The judge's 1-5 grade of ``answer`` against ``reference`` (None when unreadable), and its reason."""
    reply = judge.complete([{"role": "system", "content": SCORE_RUBRIC}, {"role": "user", "content": (
        f"Request:\n{prompt}\n\nReference answer:\n{reference}\n\nAnswer to grade:\n{answer}")}])
    found = SCORE.search(reply or "")
    _, reason = parse_verdict(reply)
    return (int(found.group(1)) if found else None), reason


def judge_evaluation(judge: ChatJudge, report, cases, folder=None, progress=None) -> dict:
    """Grade every variant's answers in an evaluation report against the cases' references.

    Adds ``judge_score`` (the mean grade, 1-5, over readable grades) to each variant's metrics, and
    returns (and, given ``folder``, saves as judge.json) the rubric, grades and reasons."""
    from assistant.services.workspace import atomic_write_json

    prompts = [next((m["content"] for m in reversed(c.messages) if m["role"] == "user"), "") for c in cases]
    graded = {"judge": judge.name, "rubric": SCORE_RUBRIC, "variants": {}}
    total = len(report.results) * len(cases)
    for v_index, result in enumerate(report.results):
        rows = []
        for c_index, (prompt, case, answer) in enumerate(zip(prompts, cases, result.answers, strict=True)):
            if progress:
                progress((v_index * len(cases) + c_index) / max(total, 1), f"judging {result.variant}")
            score, reason = score_answer(judge, prompt, case.reference, answer)
            rows.append({"score": score, "reason": reason})
        readable = [r["score"] for r in rows if r["score"] is not None]
        result.metrics["judge_score"] = round(sum(readable) / len(readable), 3) if readable else None
        graded["variants"][result.variant] = {"mean_score": result.metrics["judge_score"], "graded": len(readable),
                                              "cases": rows}
    if folder is not None:
        atomic_write_json(Path(folder) / "judge.json", graded)
    return graded
