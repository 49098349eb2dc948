"""The Gradio app: ``build_app()`` returns a ``gr.Blocks`` to launch or mount.

    from ui.app import build_app
    build_app(workspace="tunewise-data").launch()            # standalone
    gr.mount_gradio_app(fastapi_app, build_app(), path="/tunewise")  # inside another app

Named API endpoints, callable from ``gradio_client``:
    /interview (message, project="default") -> the assistant's reply to one chat turn
    /plan      (project="default")          -> the project's current plan as JSON
    /search    (query, k=5, mode="bm25", project="default") -> hits with source, page, span, score
    /ingest    (files, project)                              -> per-file results and the document table
    /compare   (prompt, variants, project)                   -> each variant's answer; history per session
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from assistant.advisor import Advisor  # noqa: E402
from assistant.knowledge import KnowledgeBases, KnowledgeSettings  # noqa: E402
from assistant.runtime import ModelSettings, SharedModel  # noqa: E402
from assistant.workspace import DEFAULT_PROJECT, Workspace, WorkspaceError  # noqa: E402
from ui.behaviour_tab import build_behaviour_tab  # noqa: E402
from ui.compare_tab import build_compare_tab  # noqa: E402
from ui.interview_tab import build_interview_tab, load_view  # noqa: E402
from ui.knowledge_tab import build_knowledge_tab  # noqa: E402

TITLE = "Tunewise"
INTRO = ("**Should you fine-tune, retrieve, or just prompt?** Answer a few questions and get a "
         "plan with its reasons and a memory table for your GPU.")


def build_app(workspace: Workspace | str | os.PathLike | None = None, project: str = DEFAULT_PROJECT,
              knowledge: KnowledgeSettings | None = None, model: ModelSettings | None = None) -> gr.Blocks:
    """Build the app over ``workspace`` (a Workspace or a folder), opening ``project``.

    ``knowledge`` sets the Chroma server and embedding model; ``model`` the chat model used for
    answers (loaded on first use).
    """
    if not isinstance(workspace, Workspace):
        workspace = Workspace(workspace)
    advisor = Advisor(workspace)
    kbs = KnowledgeBases(workspace, knowledge)
    shared_model = SharedModel(model)
    workspace.ensure(project)

    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row(equal_height=True):
            chosen = gr.Dropdown(workspace.list_projects(), value=project, label="Project", scale=2,
                                 elem_id="project-select", allow_custom_value=True)
            new_name = gr.Textbox(label="New or renamed project", placeholder="name", scale=2)
            create = gr.Button("Create", scale=1)
            rename = gr.Button("Rename", scale=1)
            delete = gr.Button("Delete", scale=1, variant="stop")
        with gr.Tabs():
            with gr.Tab("Interview", id="interview"):
                tab = build_interview_tab(advisor, chosen)
            with gr.Tab("Knowledge", id="knowledge"):
                knowledge_tab = build_knowledge_tab(kbs, shared_model, chosen)
            with gr.Tab("Behaviour", id="behaviour") as behaviour_tab_item:
                behaviour_tab = build_behaviour_tab(workspace, chosen)
            with gr.Tab("Compare", id="compare"), gr.Tabs():
                build_compare_tab(workspace, shared_model, kbs, advisor, chosen)

        def show(name: str, notice: str = "") -> list:
            return [gr.Dropdown(choices=workspace.list_projects(), value=name), "",
                    *load_view(advisor, name, notice), *knowledge_tab["refresh"](name)]

        outputs = [chosen, new_name, *tab.outputs, *knowledge_tab["outputs"]]

        def on_create(current: str, name: str) -> list:
            try:
                workspace.create(name.strip())
            except WorkspaceError as error:
                return show(current, f"**Not created:** {error}")
            return show(name.strip(), f"Created project {name.strip()!r}.")

        def on_rename(current: str, name: str) -> list:
            kbs.forget(current)
            try:
                workspace.rename(current, name.strip())
            except WorkspaceError as error:
                return show(current, f"**Not renamed:** {error}")
            return show(name.strip(), f"Renamed {current!r} to {name.strip()!r}.")

        def on_delete(current: str) -> list:
            kbs.forget(current)
            try:
                workspace.delete(current)
            except WorkspaceError as error:
                return show(current, f"**Not deleted:** {error}")
            remaining = workspace.list_projects()
            fallback = remaining[0] if remaining else workspace.ensure(DEFAULT_PROJECT).name
            return show(fallback, f"Deleted project {current!r}.")

        private = {"api_visibility": "private"}
        create.click(on_create, [chosen, new_name], outputs, **private)
        rename.click(on_rename, [chosen, new_name], outputs, **private)
        delete.click(on_delete, [chosen], outputs, **private)
        def open_project(name: str) -> list:
            return [*load_view(advisor, name), *knowledge_tab["refresh"](name), *behaviour_tab["prefill"](name)]

        project_outputs = [*tab.outputs, *knowledge_tab["outputs"], *behaviour_tab["outputs"]]
        chosen.input(open_project, [chosen], project_outputs, **private)
        app.load(open_project, [chosen], project_outputs, **private)
        # The plan may have changed in the Interview tab: prefill again when Behaviour opens.
        behaviour_tab_item.select(behaviour_tab["prefill"], [chosen], behaviour_tab["outputs"], **private)

        def interview(message: str, project: str = DEFAULT_PROJECT) -> str:
            """Send one chat turn to the project's interview and return the assistant's reply."""
            try:
                return advisor.turn(project, message).reply
            except WorkspaceError as error:
                raise gr.Error(str(error)) from error

        def plan(project: str = DEFAULT_PROJECT) -> dict:
            """The project's current plan (decision, flags, settings, memory, reasons) as JSON."""
            try:
                return advisor.plan(project)
            except WorkspaceError as error:
                raise gr.Error(str(error)) from error

        def search(query: str, k: int = 5, mode: str = "bm25", project: str = DEFAULT_PROJECT) -> list[dict]:
            """Search the project's documents; each hit has source, text, score, page, start, end."""
            try:
                return [h.to_dict() for h in kbs.get(project).search(query, int(k), mode)]
            except (WorkspaceError, ValueError) as error:
                raise gr.Error(str(error)) from error

        gr.api(interview, api_name="interview")
        gr.api(plan, api_name="plan")
        gr.api(search, api_name="search")
    return app


MAX_UPLOAD = "200mb"
"""Gradio refuses larger uploads before they reach any handler; loaders apply per-file limits too."""


def serve(host: str = "127.0.0.1", port: int = 7860, workspace: str | None = None,
          project: str = DEFAULT_PROJECT, knowledge: KnowledgeSettings | None = None,
          model: ModelSettings | None = None, auth: list[tuple[str, str]] | None = None) -> None:
    """Start the app and block until interrupted."""
    app = build_app(workspace, project, knowledge, model)
    print(f"Tunewise workspace: {Workspace(workspace).root}")
    app.queue(default_concurrency_limit=8).launch(server_name=host, server_port=port, show_error=True,
                                                  auth=auth, max_file_size=MAX_UPLOAD)
