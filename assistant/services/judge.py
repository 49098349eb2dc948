"""An LLM judge, and how far to trust it: its agreement with the user's own blind votes.

A judge is any chat model Tunewise can load, or an OpenAI-compatible URL. It compares two answers
to one prompt with a written rubric and says A, B or tie with a reason. Each pair is judged in
both orders; a judge that changes its mind when the answers swap places is showing position bias,
and that pair counts as a tie. Over the pairs the user voted on blind, the judge's verdicts are
compared with the votes: percent agreement and Cohen's kappa, with n (assistant/core/agreement.py).
The rubric, every verdict and every reason are saved with the result.

A judge URL is an outbound request the server makes, so :class:`HttpJudge` checks it: http or https,
no user name, query or fragment (a ``?`` would turn the appended ``/chat/completions`` into a query
and let the URL pick the path), and, unless allowed, no host that resolves to a loopback, private,
link-local, multicast, reserved or unspecified address. Its errors say "did not answer" and at
most the HTTP status: the reply's body and the kind of network failure go to the server's log only.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from assistant.core.agreement import agreement
from assistant.core.errors import TunewiseError

RUBRIC = ("You are a strict judge comparing two answers to the same request. The better answer is correct, "
          "does what was asked (including any required format), and is clear and concise. Length is not "
          "quality. If a reference answer is given, agreement with it matters most. If neither is better, "
          "say tie.\nReply with exactly two lines:\nVerdict: A, B or tie\nReason: one sentence")
VERDICT = re.compile(r"verdict\s*[:\-]?\s*\**\s*(a|b|tie)\b", re.IGNORECASE)
log = logging.getLogger("tunewise")


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

        # The judge is the base model: the adapters it judges are disabled while it answers.
        return chat(self.loaded, messages, GenerationSettings(max_new_tokens=self.max_new_tokens), adapter=BASE)


JUDGE_URL_HINT = "give the base URL of an OpenAI-compatible API (ending in /v1), e.g. http://127.0.0.1:8000/v1"


def check_judge_url(url: str) -> str:
    """``url`` as a judge's base URL (trailing ``/`` dropped), or a JudgeError saying what is wrong
    with its shape: http or https, a host, no user name or password, no query, no fragment."""
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as error:
        raise JudgeError(f"the judge URL {text!r} cannot be read", JUDGE_URL_HINT) from error
    problem = ("it is not http or https" if parts.scheme.lower() not in ("http", "https") else
               "it names no host" if not parts.hostname else
               "it carries a user name or password (give the key with --judge-key)" if "@" in parts.netloc else
               "it has a query (?...)" if "?" in text else
               "it has a fragment (#...)" if "#" in text else
               "it has spaces or control characters" if any(c.isspace() or ord(c) < 32 for c in text) else "")
    if problem:
        raise JudgeError(f"the judge URL {text!r} is refused: {problem}", JUDGE_URL_HINT)
    return text.rstrip("/")


def refused_address(address: str) -> bool:
    """Whether an IP address is one a judge may not be called at without the operator's leave."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is no part of it
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped or ip.sixtofour):
        ip = ip.ipv4_mapped or ip.sixtofour  # ::ffff:127.0.0.1 and 2002:7f00:1:: reach IPv4 hosts
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def private_host(host: str, port: int) -> bool:
    """Whether ``host`` is, or resolves to any, address :func:`refused_address` refuses. A name that
    does not resolve raises OSError."""
    try:
        return refused_address(host)
    except ValueError:  # a name, not an address
        pass
    return any(refused_address(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


class HttpJudge:
    """Any OpenAI-compatible chat endpoint (``URL`` is the API's base, e.g. http://host:8000/v1).

    ``allow_private`` lets the host resolve to a loopback, private or link-local address (the CLI,
    whose user is the operator, and endpoints the operator allowed); ``label`` is how errors and
    saved results name it (default "MODEL at URL").
    """

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 allow_private: bool = False, label: str | None = None):
        self.url = check_judge_url(url)
        self.model = model
        self.name = label or f"{model} at {self.url}"
        self.api_key = api_key
        self.timeout = timeout
        self.allow_private = allow_private

    def complete(self, messages: list[dict]) -> str:
        import httpx

        parts = urlsplit(self.url)
        if not self.allow_private:
            # Checked before every request, not once: what a name resolves to can change.
            try:
                private = private_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
            except OSError as error:
                raise self.no_answer(f"{parts.hostname} does not resolve: {error}") from None
            if private:
                raise JudgeError(f"the judge {self.name} is at a loopback, private or link-local address, which "
                                 "this server does not call",
                                 "the operator can allow it with serve --allow-private-judge")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": 200}
        try:
            response = httpx.post(f"{self.url}/chat/completions", json=body, headers=headers, timeout=self.timeout,
                                  follow_redirects=False)
        except httpx.HTTPError as error:
            raise self.no_answer(repr(error)) from None
        if response.status_code != 200:
            raise self.no_answer(f"HTTP {response.status_code}: {response.text[:500]!r}",
                                 f" (HTTP {response.status_code})") from None
        try:
            return response.json()["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError, ValueError):
            raise self.no_answer(f"not a chat completion: {response.text[:500]!r}",
                                 " with a chat completion") from None

    def no_answer(self, detail: str, shown: str = "") -> JudgeError:
        """The error a person sees: "did not answer", the HTTP status at most. The detail (the body,
        refused or timed out) is for the operator's log only: shown to a web user, it would tell them
        what listens where."""
        log.warning("the judge %s (%s) did not answer: %s", self.name, self.url, detail)
        return JudgeError(f"the judge {self.name} did not answer{shown}",
                          "check that it serves an OpenAI-compatible API and the model named")


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
    from assistant.services.arena import project_votes
    from trainers.atomic_files import write_json_atomic

    folder = workspace.project(project).path
    if not workspace.exists(project):
        raise JudgeError(f"there is no project named {project!r}")
    with project_votes(workspace, project) as store:
        votes = store.votes()
    result = check_against_votes(judge, votes, progress)
    write_json_atomic(folder / AGREEMENT_FILE, result.to_dict(), sort_keys=True)
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
    from trainers.atomic_files import write_json_atomic

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
        write_json_atomic(Path(folder) / "judge.json", graded, sort_keys=True)
    return graded
