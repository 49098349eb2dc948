"""The interview: one question at a time, free-text answers into profile slots.

A pure state machine. :func:`respond` takes the state and what the user typed and
returns the new state and the reply; nothing here touches disk or the UI, so the
Gradio tab, the API endpoint and the terminal interview all run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from assistant.core.interview_answers import parse_answer
from assistant.core.profile import MEASURED_SLOTS, TaskProfile, validate_slots
from assistant.core.rules import Plan, decide


@dataclass(frozen=True)
class QuickReply:
    label: str
    value: str


@dataclass(frozen=True)
class Question:
    slot: str
    text: str
    quick_replies: tuple[QuickReply, ...] = ()


def _replies(*pairs: str | tuple[str, str]) -> tuple[QuickReply, ...]:
    return tuple(QuickReply(p, p) if isinstance(p, str) else QuickReply(*p) for p in pairs)


QUESTIONS: tuple[Question, ...] = (
    Question("task", "In one line, what should the model do?"),
    Question("gap", "What does the base model get wrong today: missing knowledge (facts, your "
                    "documents), behaviour (format, style, tone, a narrow skill), or both?",
             _replies(("Knowledge", "knowledge"), ("Behaviour", "behaviour"), ("Both", "both"))),
    Question("documents", "Is there a body of documents that holds the facts the model needs?",
             _replies("Yes", "No")),
    Question("examples", "How many clean, labelled examples (input and the answer you want) do "
                         "you have?",
             _replies(("None yet", "0"), ("About 50", "50"), ("A few hundred", "300"),
                      ("A few thousand", "3000"), ("10k or more", "10000"))),
    Question("can_measure", "Given held-out cases, can you tell whether an answer is right "
                            "(a reference answer, a checker, a rubric)?",
             _replies("Yes", "No")),
    Question("changes", "How often do the requirements change?",
             _replies(("Weekly", "weekly"), ("Monthly", "monthly"), ("Rarely", "rarely"))),
    Question("vram_gb", "Which GPU can you train on (the biggest one)? A card name or its GB.",
             _replies(("No GPU", "no GPU"), ("RTX 4090 (24 GB)", "RTX 4090"), ("T4 (16 GB)", "T4"),
                      ("A100 (80 GB)", "A100 80GB"), ("H100 (80 GB)", "H100"))),
    Question("model_size_b", "Which base model size do you want? Say \"no preference\" and the "
                             "plan will choose.",
             _replies(("No preference", "no preference"), ("1B", "1B"), ("3B", "3B"),
                      ("8B", "8B"), ("70B", "70B"))),
    Question("latency_sensitive", "Must a small, fast model do the job of a large one (tight "
                                  "latency or cost)?",
             _replies("Yes", "No")),
    Question("tasks", "How many distinct tasks should share one base model?",
             _replies(("One", "1"), ("Two", "2"), ("Three", "3"), ("Five", "5"))),
)
ASKED_SLOTS = tuple(q.slot for q in QUESTIONS)
SLOTS = ASKED_SLOTS + MEASURED_SLOTS
"""Every slot an interview's answers may hold: those it asks, and those the gap check measures."""
_QUESTION_BY_SLOT = {q.slot: q for q in QUESTIONS}

GREETING = ("Hi! I will ask a few questions about your task and then propose a plan: retrieval, "
            "fine-tuning (LoRA, QLoRA or full), prompting, or building an evaluation first. "
            "Say \"back\" at any time to change your last answer.")
BACK_WORDS = ("back", "undo", "go back", "previous")
RESTART_WORDS = ("restart", "start over", "reset")


@dataclass(frozen=True)
class InterviewState:
    """Answers so far, the order they came in (for "back"), and the chat transcript."""

    answers: dict[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    transcript: tuple[dict[str, str], ...] = ()

    @property
    def current_slot(self) -> str | None:
        return next((slot for slot in ASKED_SLOTS if slot not in self.answers), None)

    @property
    def done(self) -> bool:
        return self.current_slot is None

    @property
    def current_question(self) -> Question | None:
        slot = self.current_slot
        return _QUESTION_BY_SLOT[slot] if slot else None

    def profile(self) -> TaskProfile:
        """The profile so far; unanswered slots take TaskProfile's defaults."""
        return TaskProfile(**self.answers)

    def plan(self) -> Plan:
        return decide(self.profile())

    def to_dict(self) -> dict:
        return {"answers": dict(self.answers), "order": list(self.order),
                "transcript": [dict(m) for m in self.transcript]}

    @classmethod
    def from_dict(cls, data: dict | None) -> InterviewState:
        """Restore a saved state, dropping any answer that no longer validates."""
        if not data:
            return start()
        answers = {k: v for k, v in dict(data.get("answers", {})).items()
                   if k in SLOTS and not validate_slots({k: v})}
        order = tuple(s for s in data.get("order", ()) if s in answers)
        transcript = tuple({"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
                           for m in data.get("transcript", ()) if isinstance(m, dict))
        return cls(answers, order, transcript)


@dataclass(frozen=True)
class Turn:
    """What one exchange produced."""

    state: InterviewState
    reply: str
    quick_replies: tuple[QuickReply, ...]
    understood: bool
    """False when the answer could not be read and a clarifying question was asked."""


def start() -> InterviewState:
    first = QUESTIONS[0]
    return InterviewState(transcript=({"role": "assistant", "content": f"{GREETING}\n\n{first.text}"},))


def _said(state: InterviewState, user: str, reply: str) -> InterviewState:
    transcript = state.transcript + ({"role": "user", "content": user},
                                     {"role": "assistant", "content": reply})
    return replace(state, transcript=transcript)


def _ask_next(state: InterviewState) -> tuple[str, tuple[QuickReply, ...]]:
    question = state.current_question
    if question is None:
        plan = state.plan()
        return (f"Thanks, that is everything. My plan: **{plan.decision}**. The plan card shows "
                "the reasons, the memory table and the next steps. Edit any answer in the "
                "profile card, or say \"back\" to change your last one."), ()
    return question.text, question.quick_replies


def respond(state: InterviewState, message: Any) -> Turn:
    """One exchange: read ``message`` as the answer to the current question."""
    text = " ".join(str(message if message is not None else "").split())
    lowered = text.lower().strip(" .!")
    if lowered in RESTART_WORDS:
        fresh = start()
        return Turn(fresh, fresh.transcript[0]["content"], QUESTIONS[0].quick_replies, True)
    if lowered in BACK_WORDS:
        if not state.order:
            reply, replies = _ask_next(state)
            return Turn(_said(state, text, "There is nothing to go back to. " + reply), "There is "
                        "nothing to go back to. " + reply, replies, True)
        last = state.order[-1]
        answers = {k: v for k, v in state.answers.items() if k != last}
        state = replace(state, answers=answers, order=state.order[:-1])
        question = _QUESTION_BY_SLOT[last]
        reply = f"Sure, let us redo that one. {question.text}"
        return Turn(_said(state, text, reply), reply, question.quick_replies, True)

    question = state.current_question
    if question is None:
        reply = ("The plan is ready. Say \"back\" to change your last answer, \"restart\" to "
                 "begin again, or edit the profile card.")
        return Turn(_said(state, text, reply), reply, (), True)

    parsed = parse_answer(question.slot, text)
    state = _kept(state, parsed.elsewhere)
    if not parsed.ok:
        return Turn(_said(state, text, parsed.clarify), parsed.clarify, question.quick_replies, False)
    answers = dict(state.answers) | {question.slot: parsed.value}
    state = replace(state, answers=answers, order=state.order + (question.slot,))
    reply, replies = _ask_next(state)
    return Turn(_said(state, text, reply), reply, replies, True)


def _kept(state: InterviewState, elsewhere: dict[str, Any]) -> InterviewState:
    """``state`` with the answers a message gave to other questions (an example count typed at the
    documents question), each recorded as answered last, so that "back" forgets it first."""
    valid = {slot: value for slot, value in elsewhere.items()
             if slot in _QUESTION_BY_SLOT and not validate_slots({slot: value})}
    if not valid:
        return state
    order = tuple(s for s in state.order if s not in valid) + tuple(valid)
    return replace(state, answers=dict(state.answers) | valid, order=order)


def edit_answers(state: InterviewState, values: dict[str, Any]) -> InterviewState:
    """Set slots directly (the editable profile card). Raises ProfileError naming bad slots."""
    unknown = sorted(set(values) - set(SLOTS))
    if unknown:
        from assistant.core.profile import ProfileError

        raise ProfileError(f"unknown slots {unknown}")
    merged = dict(state.answers) | values
    TaskProfile(**merged)  # validates every slot together
    order = tuple(s for s in state.order if s not in values) + tuple(values)
    return replace(state, answers=merged, order=order)
