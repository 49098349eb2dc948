"""The interview and plan of one project, kept on disk: what the UI, the API and the CLI call.

Each call loads the project's saved interview, applies one change through the pure
functions of :mod:`assistant.core.interview`, saves the result with its profile and plan,
and returns what the caller shows. The project lock makes concurrent requests safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assistant.core import interview
from assistant.core.interview import InterviewState, QuickReply
from assistant.services.workspace import Workspace


@dataclass(frozen=True)
class AdvisorReply:
    reply: str
    quick_replies: tuple[QuickReply, ...]
    state: InterviewState
    understood: bool = True


class Advisor:
    """Interview turns, profile edits and plans for the projects of one workspace."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace

    def state(self, project: str) -> InterviewState:
        """The saved interview; a project that does not exist is an error, never created by a read."""
        return InterviewState.from_dict(self.workspace.load(project).get("interview"))

    def _save(self, project: str, state: InterviewState) -> None:
        self.workspace.update(project, lambda data: data | {
            "interview": state.to_dict(), "profile": state.profile().to_dict(), "plan": state.plan().to_dict()})

    def turn(self, project: str, message: Any) -> AdvisorReply:
        """Answer the current question of ``project``'s interview with ``message``."""
        with self.workspace.locked(project):
            self.workspace.ensure(project)  # a first answer starts the project
            result = interview.respond(self.state(project), message)
            self._save(project, result.state)
        return AdvisorReply(result.reply, result.quick_replies, result.state, result.understood)

    def edit(self, project: str, form: dict[str, Any]) -> InterviewState:
        """Apply a profile form (see :func:`form_edits`); raises ProfileError, saving nothing,
        if a value is invalid."""
        with self.workspace.locked(project):
            self.workspace.ensure(project)
            state = self.state(project)
            state = interview.edit_answers(state, form_edits(state, form))
            self._save(project, state)
        return state

    def restart(self, project: str) -> InterviewState:
        with self.workspace.locked(project):
            self.workspace.ensure(project)
            state = interview.start()
            self._save(project, state)
        return state

    def pending_question(self, project: str) -> tuple[str, tuple[QuickReply, ...]]:
        question = self.state(project).current_question
        return (question.text, question.quick_replies) if question else ("", ())

    def plan(self, project: str) -> dict[str, Any]:
        return self.state(project).plan().to_dict()


def form_edits(state: InterviewState, form: dict[str, Any]) -> dict[str, Any]:
    """The slots a profile form changes, read as the interview would read them.

    The form shows every slot, answered or not; only fields whose value differs from the
    current profile count as answers, so touching one field does not silently answer the
    rest of the interview. Text fields (the GPU) go through the
    interview's own parser. Raises ProfileError with a readable message on a bad value.
    """
    from assistant.core.interview_answers import parse_answer
    from assistant.core.profile import ProfileError

    current = state.profile().to_dict()
    edits: dict[str, Any] = {}
    for slot, raw in form.items():
        value = raw
        if slot == "vram_gb" and isinstance(raw, str):
            parsed = parse_answer("vram_gb", raw)
            if not parsed.ok:
                raise ProfileError(f"GPU: {parsed.clarify}")
            value = parsed.value
        elif slot == "model_size_b" and (raw is None or raw == 0):
            value = None
        elif slot in ("examples", "tasks") and isinstance(raw, float) and raw.is_integer():
            value = int(raw)
        elif slot in ("vram_gb", "model_size_b") and isinstance(raw, int):
            value = float(raw)
        if value != current.get(slot):
            edits[slot] = value
    return edits
