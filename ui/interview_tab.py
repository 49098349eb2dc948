"""The Interview tab: the chat, the editable profile card and the plan card.

Only wiring: every event calls :class:`assistant.services.advisor.Advisor` and turns what it
returns into component values.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import gradio as gr

from assistant.core.interview import InterviewState, QuickReply
from assistant.core.plan_report import evidence_markdown, plan_markdown
from assistant.core.profile import CHANGE_RATES, GAPS, ProfileError
from assistant.core.rules import Plan
from assistant.runtime.hardware import Hardware, detect_hardware
from assistant.services.advisor import Advisor
from assistant.services.tenants import Tenants
from assistant.services.training_settings import training_settings
from assistant.services.workspace import WorkspaceError

REFRESH_SECONDS = 2.0
"""How often an open page checks whether its project's record changed (a cheap stat of project.json)."""

PROFILE_FIELDS = ("task", "gap", "documents", "examples", "can_measure", "changes", "vram_gb",
                  "model_size_b", "latency_sensitive", "tasks")


@dataclass
class InterviewTab:
    chatbot: gr.Chatbot
    message: gr.Textbox
    profile_fields: list[gr.components.Component]
    plan_card: gr.Markdown
    notice: gr.Markdown
    stamp: gr.State
    """The version of the project's record the card shows (Workspace.stamp)."""
    refresh: Any = None
    """``refresh(project, stamp, request)``: the card and profile again when the record changed, else skips."""

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.chatbot, self.message, *self.profile_fields, self.plan_card, self.notice, self.stamp]

    @property
    def refreshed(self) -> list[gr.components.Component]:
        """What :attr:`refresh` updates: the stamp, the profile card and the plan card, never the chat
        or the message being typed."""
        return [self.stamp, *self.profile_fields, self.plan_card]


def chat_messages(state: InterviewState, quick_replies: tuple[QuickReply, ...]) -> list[dict]:
    """The transcript as Chatbot messages, with quick replies under the last question."""
    messages = [{"role": m["role"], "content": m["content"]} for m in state.transcript]
    if messages and quick_replies and messages[-1]["role"] == "assistant":
        messages[-1]["options"] = [{"label": r.label, "value": r.value} for r in quick_replies]
    return messages


def _profile_values(state: InterviewState) -> list[Any]:
    profile = state.profile().to_dict()
    values = [profile[name] for name in PROFILE_FIELDS]
    values[PROFILE_FIELDS.index("vram_gb")] = f"{profile['vram_gb']:g}"
    values[PROFILE_FIELDS.index("model_size_b")] = profile["model_size_b"] or 0
    return values


def measured_markdown(project_data: dict) -> str:
    """What measurements said about the plan: the gap check, and whether the plan held on the
    strongest evidence (with the newest run beside it when that is another one)."""
    parts = []
    if project_data.get("gap_check"):
        check = project_data["gap_check"]
        parts.append(f"**Gap check ({check['cases']} examples):** {check['text']}")
    held = evidence_markdown(project_data.get("outcome"), project_data.get("outcome_history") or ())
    if held:
        parts.append(held)
    return "\n\n".join(parts)


@functools.cache
def this_machine() -> Hardware:
    """The machine training runs on, detected once (as the Behaviour tab does)."""
    return detect_hardware()


def trained_model(plan: Plan) -> tuple[str, str] | None:
    """The model training takes for ``plan`` on this machine, and why: the Behaviour form's model and
    reason, from the same call (training_settings), so the card and the form name the same model."""
    try:
        choice = training_settings(plan, this_machine())
    except ValueError:  # a plan the trainer cannot take: the Behaviour tab says why
        return None
    return choice.config.model, choice.reasons.get("model", "")


def _plan_card(state: InterviewState) -> str:
    if not state.answers:
        return "The plan appears here once you have answered a few questions."
    prefix = "" if state.done else ("*Draft: unanswered questions use defaults until you answer "
                                    "them.*\n\n")
    typed = state.plan()
    plan = typed.to_dict()
    links = []
    if plan["retrieval"]:
        links.append("**Next:** open the **Knowledge** tab to upload the documents and ask questions of them.")
    if plan["finetune"] != "none":
        links.append("**Next:** open the **Behaviour** tab to upload examples and train the adapter; its settings "
                     "start from this plan.")
    return prefix + plan_markdown(plan, trained_model(typed)) + ("\n\n" + "\n\n".join(links) if links else "")


def card_markdown(state: InterviewState, measured: str = "") -> str:
    """The plan card: the plan, the model trained here, and what measurements said."""
    return _plan_card(state) + (f"\n\n### Measured\n{measured}" if measured else "")


def view(state: InterviewState, quick_replies: tuple[QuickReply, ...], notice: str = "", measured: str = "",
         stamp: str = "") -> list:
    """Values for :attr:`InterviewTab.outputs`."""
    return [chat_messages(state, quick_replies), "", *_profile_values(state), card_markdown(state, measured),
            notice, stamp]


def build_interview_tab(tenants: Tenants, project: gr.State | gr.Dropdown) -> InterviewTab:
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Interview", height=520, buttons=["copy"])
            message = gr.Textbox(placeholder="Type your answer and press Enter", show_label=False,
                                 submit_btn=True, elem_id="interview-message")
            with gr.Row():
                back = gr.Button("Back", size="sm")
                restart = gr.Button("Start over", size="sm", variant="stop")
        with gr.Column(scale=2):
            gr.Markdown("### Profile\nEdit any slot and press *Apply*; the plan follows.")
            fields = [
                gr.Textbox(label="Task"),
                gr.Dropdown(list(GAPS), label="Gap (what the model lacks)"),
                gr.Checkbox(label="Documents hold the missing facts"),
                gr.Number(label="Clean examples", precision=0),
                gr.Checkbox(label="Can measure success on held-out cases"),
                gr.Dropdown(list(CHANGE_RATES), label="Requirements change"),
                gr.Textbox(label="GPU memory (GB or a card name; 0 = no GPU)"),
                gr.Number(label="Model size, billions (0 = let the plan choose)"),
                gr.Checkbox(label="Latency sensitive"),
                gr.Number(label="Distinct tasks", precision=0),
            ]
            apply = gr.Button("Apply", variant="primary")
            notice = gr.Markdown()
    plan_card = gr.Markdown(elem_id="plan-card")
    stamp = gr.State("")
    timer = gr.Timer(REFRESH_SECONDS)
    tab = InterviewTab(chatbot, message, fields, plan_card, notice, stamp)

    def measured(advisor: Advisor, project_name: str) -> str:
        return measured_markdown(advisor.workspace.load(project_name))

    def turn(text: str, project_name: str, request: gr.Request) -> list:
        advisor = tenants.for_request(request).advisor
        try:
            result = advisor.turn(project_name, text)
        except WorkspaceError as error:
            state = advisor.state(project_name)
            return view(state, (), f"**Could not save:** {error}")
        version = advisor.workspace.stamp(project_name)  # before reading: a later write shows on the next tick
        return view(result.state, result.quick_replies, measured=measured(advisor, project_name), stamp=version)

    def choose_option(project_name: str, selection: gr.SelectData, request: gr.Request) -> list:
        return turn(str(selection.value), project_name, request)

    def go_back(project_name: str, request: gr.Request) -> list:
        return turn("back", project_name, request)

    def apply_form(request: gr.Request, project_name: str, *values: Any) -> list:
        advisor = tenants.for_request(request).advisor
        try:
            state = advisor.edit(project_name, dict(zip(PROFILE_FIELDS, values, strict=True)))
        except (ProfileError, WorkspaceError) as error:
            state = advisor.state(project_name)
            return view(state, _pending_replies(advisor, project_name), f"**Not applied:** {error}")
        version = advisor.workspace.stamp(project_name)
        return view(state, _pending_replies(advisor, project_name), "Profile updated.",
                    measured(advisor, project_name), version)

    def start_over(project_name: str, request: gr.Request) -> list:
        advisor = tenants.for_request(request).advisor
        state = advisor.restart(project_name)
        return view(state, state.current_question.quick_replies, stamp=advisor.workspace.stamp(project_name))

    def refresh_plan_card(project_name: str, shown: str, request: gr.Request) -> list:
        """The plan card and profile again when the project's record changed since they were drawn:
        an evaluation or a gap check finished (Compare tab, or `tunewise eval` in a terminal), or the
        interview moved on in another page. One stat of project.json when nothing changed."""
        advisor = tenants.for_request(request).advisor
        version = advisor.workspace.stamp(project_name) if project_name else ""
        if not version or version == shown:
            return [gr.skip() for _ in tab.refreshed]
        state = advisor.state(project_name)
        return [version, *_profile_values(state), card_markdown(state, measured(advisor, project_name))]

    tab.refresh = refresh_plan_card
    private = {"api_visibility": "private"}
    message.submit(turn, [message, project], tab.outputs, **private)
    chatbot.option_select(choose_option, [project], tab.outputs, **private)
    back.click(go_back, [project], tab.outputs, **private)
    restart.click(start_over, [project], tab.outputs, **private)
    apply.click(apply_form, [project, *fields], tab.outputs, **private)
    # Other tabs and other processes write the project too; polling a stat is the one way that sees
    # them all without each writer knowing about this card (see docs/architecture.md).
    timer.tick(refresh_plan_card, [project, stamp], tab.refreshed, show_progress="hidden", queue=False,
               **private)
    return tab


def _pending_replies(advisor: Advisor, project: str) -> tuple[QuickReply, ...]:
    return advisor.pending_question(project)[1]


def load_view(advisor: Advisor, project: str, notice: str = "") -> list:
    """Component values for a project as it is on disk."""
    version = advisor.workspace.stamp(project)  # before reading: a later write shows on the next tick
    return view(advisor.state(project), _pending_replies(advisor, project), notice,
                measured_markdown(advisor.workspace.load(project)), version)
