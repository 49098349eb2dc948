"""The Interview tab: the chat, the editable profile card and the plan card.

Only wiring: every event calls :class:`assistant.services.advisor.Advisor` and turns what it
returns into component values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from assistant.core.interview import InterviewState, QuickReply
from assistant.core.plan_report import plan_markdown
from assistant.core.profile import CHANGE_RATES, GAPS, ProfileError
from assistant.services.advisor import Advisor
from assistant.services.tenants import Tenants
from assistant.services.workspace import WorkspaceError

PROFILE_FIELDS = ("task", "gap", "documents", "examples", "can_measure", "changes", "vram_gb",
                  "model_size_b", "latency_sensitive", "tasks")


@dataclass
class InterviewTab:
    chatbot: gr.Chatbot
    message: gr.Textbox
    profile_fields: list[gr.components.Component]
    plan_card: gr.Markdown
    notice: gr.Markdown

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.chatbot, self.message, *self.profile_fields, self.plan_card, self.notice]


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
    """What measurements said about the plan: the gap check and the last evaluation."""
    parts = []
    if project_data.get("gap_check"):
        check = project_data["gap_check"]
        parts.append(f"**Gap check ({check['cases']} examples):** {check['text']}")
    if project_data.get("outcome"):
        parts.append("**Did the plan hold?** " + " ".join(project_data["outcome"]["lines"]))
    return "\n\n".join(parts)


def _plan_card(state: InterviewState) -> str:
    if not state.answers:
        return "The plan appears here once you have answered a few questions."
    prefix = "" if state.done else ("*Draft: unanswered questions use defaults until you answer "
                                    "them.*\n\n")
    plan = state.plan().to_dict()
    links = []
    if plan["retrieval"]:
        links.append("**Next:** open the **Knowledge** tab to upload the documents and ask questions of them.")
    if plan["finetune"] != "none":
        links.append("**Next:** open the **Behaviour** tab to upload examples and train the adapter; its settings "
                     "start from this plan.")
    return prefix + plan_markdown(plan) + ("\n\n" + "\n\n".join(links) if links else "")


def view(state: InterviewState, quick_replies: tuple[QuickReply, ...], notice: str = "", measured: str = "") -> list:
    """Values for :attr:`InterviewTab.outputs`."""
    card = _plan_card(state) + (f"\n\n### Measured\n{measured}" if measured else "")
    return [chat_messages(state, quick_replies), "", *_profile_values(state), card, notice]


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
    tab = InterviewTab(chatbot, message, fields, plan_card, notice)

    def measured(advisor: Advisor, project_name: str) -> str:
        return measured_markdown(advisor.workspace.load(project_name))

    def turn(text: str, project_name: str, request: gr.Request) -> list:
        advisor = tenants.for_request(request).advisor
        try:
            result = advisor.turn(project_name, text)
        except WorkspaceError as error:
            state = advisor.state(project_name)
            return view(state, (), f"**Could not save:** {error}")
        return view(result.state, result.quick_replies, measured=measured(advisor, project_name))

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
        return view(state, _pending_replies(advisor, project_name), "Profile updated.",
                    measured(advisor, project_name))

    def start_over(project_name: str, request: gr.Request) -> list:
        state = tenants.for_request(request).advisor.restart(project_name)
        return view(state, state.current_question.quick_replies)

    private = {"api_visibility": "private"}
    message.submit(turn, [message, project], tab.outputs, **private)
    chatbot.option_select(choose_option, [project], tab.outputs, **private)
    back.click(go_back, [project], tab.outputs, **private)
    restart.click(start_over, [project], tab.outputs, **private)
    apply.click(apply_form, [project, *fields], tab.outputs, **private)
    return tab


def _pending_replies(advisor: Advisor, project: str) -> tuple[QuickReply, ...]:
    return advisor.pending_question(project)[1]


def load_view(advisor: Advisor, project: str, notice: str = "") -> list:
    """Component values for a project as it is on disk."""
    return view(advisor.state(project), _pending_replies(advisor, project), notice,
                measured_markdown(advisor.workspace.load(project)))
