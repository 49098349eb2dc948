"""The model picker: which chat model answers in Knowledge, Compare and evaluations.

Wiring only: assistant.services.operator lists the models web users may choose (those this machine
has, and the operator's ``serve --model-dir`` folders), and assistant.runtime.generation.SharedModel
switches. Any other name, a folder or a hub id, is refused with one sentence that does not say
whether it exists, and nothing is loaded or downloaded. The model is the app's one shared base
(adapters attach to it), so a switch changes it for everyone using the app. A switch loads the new
model at once, so a folder that holds no usable model is found out here, and the previous model is
put back, instead of failing on someone's next question.
"""

from __future__ import annotations

import html

import gradio as gr

from assistant.runtime.generation import ModelUnavailableError
from assistant.runtime.models import BUNDLED_MODEL
from assistant.services.operator import MODEL_NOT_OFFERED, model_offered, offered_models
from assistant.services.tenants import Tenant, Tenants


def model_choices(tenants: Tenants, tenant: Tenant, project: str) -> list[tuple[str, str]]:
    """(label, name) pairs: local models, the operator's model folders, the bases of the project's
    adapters, and the current one."""
    bases = [a.base_model for a in tenant.behaviour(project).adapters.list()]
    return offered_models(tenants.policy, tenants.model.name, bases, tenants.first_model)


def refused_model(tenants: Tenants, tenant: Tenant, project: str, wanted: str) -> str | None:
    """None when a web user may use the model ``wanted``; else the one sentence every refusal gets."""
    offered = [name for _, name in model_choices(tenants, tenant, project)]
    return None if model_offered(wanted, offered, tenants.policy) else MODEL_NOT_OFFERED


def label_of(name: str, choices: list[tuple[str, str]]) -> str:
    return next((label for label, value in choices if value == name), name)


def status_markdown(name: str, choices: list[tuple[str, str]], notice: str = "") -> str:
    line = f"**Model in use:** {html.escape(label_of(name, choices))}"
    if name != BUNDLED_MODEL and label_of(name, choices) != name:
        line += f" &nbsp; `{html.escape(name)}`"
    return line + (f"\n\n{notice}" if notice else "")


def build_model_picker(tenants: Tenants, project: gr.Dropdown) -> dict:
    """The picker's components in a row; returns ``refresh(tenant, project)`` and its ``outputs``,
    and ``switched``, the event to chain what depends on the model (the Compare tab's variants)."""
    with gr.Row(equal_height=True):
        picker = gr.Dropdown([], value=tenants.model.name, allow_custom_value=True, scale=3, elem_id="model-select",
                             label="Chat model (pick one, or type a folder in the server's --model-dir and press "
                                   "Enter)")
        use = gr.Button("Use this model", scale=1, elem_id="model-use")
    status = gr.Markdown(elem_id="model-status")
    gr.Markdown("<small>One model serves everyone using this app: switching changes it for all of them. "
                "Adapters only work on the model they were trained on.</small>")

    def refresh(tenant: Tenant, name: str, notice: str = "") -> list:
        current = tenants.model.name
        choices = model_choices(tenants, tenant, name)
        return [gr.Dropdown(choices=choices, value=current), status_markdown(current, choices, notice)]

    def on_switch(choice: str | None, name: str, request: gr.Request, progress=gr.Progress()) -> list:  # noqa: B008
        tenant = tenants.for_request(request)
        wanted = (choice or "").strip()
        shared = tenants.model
        previous = shared.name
        if not wanted or wanted == previous:
            return refresh(tenant, name)
        refused = refused_model(tenants, tenant, name, wanted)
        if refused:  # checked before anything touches the disk or the hub
            return refresh(tenant, name, f"**Not switched:** {refused[:1].upper()}{refused[1:]}. "
                                         f"Still using {html.escape(previous)}.")
        progress(0, desc=f"Loading {wanted}")
        try:
            shared.switch(wanted)
        except ModelUnavailableError as error:
            return refresh(tenant, name, f"**Not switched:** {html.escape(str(error))}. "
                                         f"Still using {html.escape(previous)}.")
        try:
            loaded = shared.get()
        except Exception as error:  # noqa: BLE001 - whatever stops it loading, the working model goes back
            shared.switch(previous)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return refresh(tenant, name, f"**Not switched:** {html.escape(wanted)} does not load "
                                         f"({html.escape(reason)}). Still using {html.escape(previous)}.")
        return refresh(tenant, name, f"Loaded on {loaded.device}.")

    outputs = [picker, status]
    private = {"api_visibility": "private"}
    switched = [event(on_switch, [picker, project], outputs, show_progress_on=status, **private)
                for event in (picker.input, use.click)]
    return {"refresh": refresh, "outputs": outputs, "switched": switched}
