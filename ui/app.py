"""The Gradio app: ``build_app()`` returns a ``gr.Blocks`` to launch or mount.

    from ui.app import build_app
    build_app(workspace="tunewise-data").launch()            # standalone
    gr.mount_gradio_app(fastapi_app, build_app(), path="/tunewise")  # inside another app

Named API endpoints, callable from ``gradio_client``:
    /interview (message, project="default") -> the assistant's reply to one chat turn
    /plan      (project="default")          -> the project's current plan as JSON
    /search    (query, k=5, mode="hybrid", project="default") -> hits with source, page, span, score
    /ingest    (files, project)                              -> per-file results and the document table
    /compare   (prompt, variants, project)                   -> each variant's answer; history per session
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from assistant.runtime.generation import ModelSettings, SharedModel  # noqa: E402
from assistant.services.knowledge import KnowledgeSettings  # noqa: E402
from assistant.services.operator import OperatorPolicy  # noqa: E402
from assistant.services.tenants import Tenant, Tenants  # noqa: E402
from assistant.services.workspace import DEFAULT_PROJECT, Workspace, WorkspaceError  # noqa: E402
from ui.behaviour_tab import build_behaviour_tab  # noqa: E402
from ui.compare_tab import build_compare_tab  # noqa: E402
from ui.errors import guard_handlers  # noqa: E402
from ui.interview_tab import build_interview_tab, load_view  # noqa: E402
from ui.knowledge_tab import build_knowledge_tab  # noqa: E402
from ui.model_picker import build_model_picker  # noqa: E402
from ui.uploads import CACHE_SWEEP  # noqa: E402

TRANSLATIONS = gr.I18n(en={"common": {"complete": "Done"}})
"""Gradio 6.31's status tracker announces a finished event to screen readers with the key
"common.complete", which its English strings lack, so "common.complete" itself was read out (and
shows in the page's text). Other languages fall back to English."""

TITLE = "Tunewise"
INTRO = ("**Should you fine-tune, retrieve, or just prompt?** Answer a few questions and get a "
         "plan with its reasons and a memory table for your GPU.")


def build_app(workspace: Workspace | str | os.PathLike | None = None, project: str = DEFAULT_PROJECT,
              knowledge: KnowledgeSettings | None = None, model: ModelSettings | None = None,
              policy: OperatorPolicy | None = None) -> gr.Blocks:
    """Build the app over ``workspace`` (a Workspace or a folder), opening ``project``.

    ``knowledge`` sets the Chroma server and embedding model; ``model`` the chat model used for
    answers (loaded on first use); ``policy`` the judge endpoints and model folders web users may
    choose among (assistant/services/operator.py; default: none beyond the loaded model and the
    models already on this machine). When the app is launched with ``auth``, each signed-in user
    works in their own workspace under ``<workspace>/users/`` (see assistant/services/tenants.py).
    """
    if not isinstance(workspace, Workspace):
        workspace = Workspace(workspace)
    tenants = Tenants(workspace, knowledge, SharedModel(model), project, policy)

    with gr.Blocks(title=TITLE, delete_cache=CACHE_SWEEP) as app:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row(equal_height=True):
            # The choices are the signed-in user's, filled in when the page loads.
            chosen = gr.Dropdown([project], value=project, label="Project", scale=2,
                                 elem_id="project-select", allow_custom_value=True)
            new_name = gr.Textbox(label="New or renamed project", placeholder="name", scale=2)
            create = gr.Button("Create", scale=1)
            rename = gr.Button("Rename", scale=1)
            delete = gr.Button("Delete", scale=1, variant="stop")
        # Above the tabs: the model answers in Knowledge and Compare, and is the base adapters attach to.
        picker = build_model_picker(tenants, chosen)
        with gr.Tabs():
            with gr.Tab("Interview", id="interview") as interview_tab_item:
                tab = build_interview_tab(tenants, chosen)
            with gr.Tab("Knowledge", id="knowledge"):
                knowledge_tab = build_knowledge_tab(tenants, chosen)
            with gr.Tab("Behaviour", id="behaviour") as behaviour_tab_item:
                behaviour_tab = build_behaviour_tab(tenants, chosen)
            with gr.Tab("Compare", id="compare") as compare_tab_item, gr.Tabs():
                compare_tab = build_compare_tab(tenants, chosen)

        def show(tenant: Tenant, name: str, notice: str = "") -> list:
            return [gr.Dropdown(choices=tenant.workspace.list_projects(), value=name), "",
                    *load_view(tenant.advisor, name, notice), *knowledge_tab["refresh"](tenant.knowledge, name)]

        outputs = [chosen, new_name, *tab.outputs, *knowledge_tab["outputs"]]

        def on_create(current: str, name: str, request: gr.Request) -> list:
            tenant = tenants.for_request(request)
            try:
                tenant.workspace.create(name.strip())
            except WorkspaceError as error:
                return show(tenant, current, f"**Not created:** {error}")
            return show(tenant, name.strip(), f"Created project {name.strip()!r}.")

        def on_rename(current: str, name: str, request: gr.Request) -> list:
            tenant = tenants.for_request(request)
            tenant.forget(current)
            try:
                tenant.workspace.rename(current, name.strip())
            except WorkspaceError as error:
                return show(tenant, current, f"**Not renamed:** {error}")
            return show(tenant, name.strip(), f"Renamed {current!r} to {name.strip()!r}.")

        def on_delete(current: str, request: gr.Request) -> list:
            tenant = tenants.for_request(request)
            tenant.forget(current)
            try:
                tenant.workspace.delete(current)
            except WorkspaceError as error:
                return show(tenant, current, f"**Not deleted:** {error}")
            remaining = tenant.workspace.list_projects()
            fallback = remaining[0] if remaining else tenant.workspace.ensure(DEFAULT_PROJECT).name
            return show(tenant, fallback, f"Deleted project {current!r}.")

        private = {"api_visibility": "private"}
        create.click(on_create, [chosen, new_name], outputs, **private)
        rename.click(on_rename, [chosen, new_name], outputs, **private)
        delete.click(on_delete, [chosen], outputs, **private)

        def project_view(tenant: Tenant, name: str) -> list:
            return [*load_view(tenant.advisor, name), *knowledge_tab["refresh"](tenant.knowledge, name),
                    *behaviour_tab["prefill"](tenant, name), *picker["refresh"](tenant, name)]

        def open_project(name: str, request: gr.Request) -> list:
            return project_view(tenants.for_request(request), name)

        def open_page(name: str, request: gr.Request) -> list:
            """The page's first view: this user's projects, and the chosen one if it is theirs."""
            tenant = tenants.for_request(request)
            names = tenant.workspace.list_projects() or [tenant.workspace.ensure(project).name]
            name = name if name in names else names[0]
            return [gr.Dropdown(choices=names, value=name), *project_view(tenant, name)]

        project_outputs = [*tab.outputs, *knowledge_tab["outputs"], *behaviour_tab["outputs"], *picker["outputs"]]
        chosen.input(open_project, [chosen], project_outputs, **private)
        app.load(open_page, [chosen], [chosen, *project_outputs], **private)
        # The plan card follows the project's record without a reload: at once when the tab opens, and on the
        # tab's own timer (an evaluation or a gap check in Compare, or `tunewise eval`, may have changed it).
        interview_tab_item.select(tab.refresh, [chosen, tab.stamp], tab.refreshed, **private)
        # The plan may have changed in the Interview tab: prefill again when Behaviour opens.
        behaviour_tab_item.select(behaviour_tab["on_prefill"], [chosen], behaviour_tab["outputs"], **private)
        # The variants to compare, loaded when the tab opens (an adapter trained meanwhile is preselected), when
        # the project changes and when another model is picked. Separate events, so that the rest of a project's
        # view does not wait for the model to load.
        compare_load = compare_tab["on_load"], compare_tab["inputs"], compare_tab["outputs"]
        compare_tab_item.select(*compare_load, **private)
        chosen.input(*compare_load, **private)
        for switched in picker["switched"]:
            switched.then(*compare_load, **private)

        def interview(request: gr.Request, message: str, project: str = DEFAULT_PROJECT) -> str:
            """Send one chat turn to the project's interview and return the assistant's reply."""
            try:
                return tenants.for_request(request).advisor.turn(project, message).reply
            except WorkspaceError as error:
                raise gr.Error(str(error)) from error

        def plan(request: gr.Request, project: str = DEFAULT_PROJECT) -> dict:
            """The project's current plan (decision, flags, settings, memory, reasons) as JSON."""
            try:
                return tenants.for_request(request).advisor.plan(project)
            except WorkspaceError as error:
                raise gr.Error(str(error)) from error

        def search(request: gr.Request, query: str, k: int = 5, mode: str = "hybrid",
                   project: str = DEFAULT_PROJECT) -> list[dict]:
            """Search the project's documents; each hit has source, text, score, page, start, end."""
            try:
                return [h.to_dict() for h in tenants.for_request(request).knowledge.get(project).search(
                    query, int(k), mode)]
            except (WorkspaceError, ValueError) as error:
                raise gr.Error(str(error)) from error

        gr.api(interview, api_name="interview")
        gr.api(plan, api_name="plan")
        gr.api(search, api_name="search")
    guard_handlers(app)  # every handler's errors reach the page as clear messages (ui/errors.py)
    app.tenants = tenants  # for the OpenAI-compatible routes, which answer from the same loaded model
    # The translations travel with the app: mount_gradio_app keeps this, and launch(), which would reset
    # it, gets it as its default.
    app.i18n_instance = TRANSLATIONS
    app.launch = functools.partial(app.launch, i18n=TRANSLATIONS)
    return app


class LocalNamesOnly:
    """ASGI middleware for a server on loopback: a request whose Host is not this machine's name
    gets 421. A plain ASGI wrapper, not Starlette's BaseHTTPMiddleware, which would stand between
    the routes and the connection (a handler could no longer see its client disconnect)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        from starlette.datastructures import Headers
        from starlette.responses import PlainTextResponse

        from ui.exposure import is_local_host_header

        if scope["type"] in ("http", "websocket") and not is_local_host_header(Headers(scope=scope).get("host")):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = PlainTextResponse("This server answers to localhost and 127.0.0.1 only.", status_code=421)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def serving_app(app: gr.Blocks, api_key: str | None = None, auth=None, path: str = "/", host: str = "127.0.0.1",
                limits=None):
    """The app as ``tunewise serve`` runs it: a FastAPI app with the Gradio app at ``path`` and the
    OpenAI-compatible ``/v1`` routes (ui/openai_api.py) beside it, both over the same tenants and
    the one loaded model.

    ``host`` is the address the server binds: on loopback, requests naming any other host are
    refused (a page on another site that points its own name at 127.0.0.1, DNS rebinding, sends its
    own name). ``limits`` (ui.openai_api.ApiLimits) bound what one /v1 request may ask.
    """
    from fastapi import FastAPI

    from ui.exposure import is_loopback
    from ui.openai_api import ApiAccess, openai_router
    from ui.uploads import MAX_UPLOAD

    server = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)
    if is_loopback(host):
        server.add_middleware(LocalNamesOnly)
    server.include_router(openai_router(app.tenants, ApiAccess(api_key, auth), limits))
    # Gradio checks that a file value names an upload only once launch() has run; mounted, it would
    # pass any server path to the handlers. The handlers check every file value themselves
    # (ui/uploads.py::uploaded_file); this turns Gradio's own check on as well.
    app.has_launched = True
    # Gradio's /login is async and calls the check on the event loop: give it the version that runs
    # the check (scrypt, and the guessing brake's wait) in a worker thread.
    page_auth = getattr(auth, "check_in_worker", auth)
    return gr.mount_gradio_app(server, app.queue(default_concurrency_limit=8), path=path, auth=page_auth,
                               show_error=True, max_file_size=MAX_UPLOAD, i18n=TRANSLATIONS)


def serve(host: str = "127.0.0.1", port: int = 7860, workspace: str | None = None,
          project: str = DEFAULT_PROJECT, knowledge: KnowledgeSettings | None = None,
          model: ModelSettings | None = None, auth=None, api_key: str | None = None,
          policy: OperatorPolicy | None = None) -> None:
    """Start the app, with its OpenAI-compatible API under /v1, and block until interrupted."""
    import uvicorn

    app = build_app(workspace, project, knowledge, model, policy)
    print(f"Tunewise workspace: {Workspace(workspace).root}")
    print(f"The app: http://{host}:{port}/   OpenAI-compatible API: http://{host}:{port}/v1", flush=True)
    uvicorn.run(serving_app(app, api_key, auth, host=host), host=host, port=port, log_level="warning")
