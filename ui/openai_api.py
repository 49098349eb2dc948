"""An OpenAI-compatible face: ``/v1/models`` and ``/v1/chat/completions`` for every variant.

Why: the tools people already use (the ``openai`` client, Open WebUI, LangChain, continue.dev)
speak this API, so each variant Tunewise trains or retrieves for becomes a model those tools can
call, on the one base the app already holds in memory.

Model ids are ``PROJECT/VARIANT``, e.g. ``default/base``, ``default/base + retrieval``,
``default/support-v1``; ``GET /v1/models`` lists them. A retrieval variant's answer carries its
sources in an extra ``tunewise.sources`` field (on the response, and on the last chunk of a stream).
Errors have OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Access follows the app: with neither an API key nor sign-in, anyone who can reach the (loopback by
default) server may call it. ``--api-key KEY`` makes ``Authorization: Bearer KEY`` required (the
workspace's own projects); with ``--auth``, ``Bearer USER:PASSWORD`` of a signed-in user reaches that
user's projects, checked by the same password brake as the sign-in page.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from dataclasses import asdict, dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from assistant.runtime.generation import GenerationSettings
from assistant.runtime.variants import AdapterBaseMismatchError
from assistant.services.tenants import Tenants
from assistant.services.workspace import WorkspaceError

MAX_NEW_TOKENS = 1024


class ApiError(Exception):
    """An error to answer in OpenAI's shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


@dataclass(frozen=True)
class ApiAccess:
    """Who may call the API: an API key, the app's users, or (neither) anyone who reaches it."""

    api_key: str | None = None
    logins: object | None = None
    """ui.logins.Logins (or any ``(user, password) -> bool``) when the app has sign-in."""

    def user(self, authorization: str | None) -> str | None:
        """The tenant the caller reaches (None: the workspace's own); ApiError 401 when refused."""
        if self.api_key is None and self.logins is None:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "this server needs an API key: send 'Authorization: Bearer KEY'",
                           "invalid_request_error", "invalid_api_key")
        if self.api_key is not None and hmac.compare_digest(token.encode(), self.api_key.encode()):
            return None
        name, colon, password = token.partition(":")
        if self.logins is not None and colon and self.logins(name, password):
            return name
        raise ApiError(401, "incorrect API key provided", "invalid_request_error", "invalid_api_key")


def split_model(model: str) -> tuple[str, str]:
    """``PROJECT/VARIANT`` into its parts; the variant may itself hold no slash."""
    project, slash, variant = (model or "").partition("/")
    if not slash or not project or not variant:
        raise ApiError(404, f"The model '{model}' does not exist: model ids are PROJECT/VARIANT (see /v1/models)",
                       "invalid_request_error", "model_not_found", "model")
    return project, variant


def generation_from(body: dict) -> GenerationSettings:
    """OpenAI's sampling fields onto the runtime's settings (greedy unless a temperature is given)."""
    try:
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 256)
        temperature = float(body.get("temperature") if body.get("temperature") is not None else 0.0)
        top_p = float(body.get("top_p") if body.get("top_p") is not None else 1.0)
    except (TypeError, ValueError) as error:
        raise ApiError(400, f"invalid sampling settings: {error}") from error
    if not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise ApiError(400, f"max_tokens must be between 1 and {MAX_NEW_TOKENS}", param="max_tokens")
    if not 0 <= temperature <= 2:
        raise ApiError(400, "temperature must be between 0 and 2", param="temperature")
    return GenerationSettings(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p)


def messages_from(body: dict) -> list[dict]:
    """The conversation as the runtime takes it: roles and plain-text contents (text parts joined)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    out = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "developer"):
            raise ApiError(400, "each message needs a role of system, user or assistant", param="messages")
        content = message.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise ApiError(400, "each message's content must be text", param="messages")
        out.append({"role": "system" if message["role"] == "developer" else message["role"], "content": content})
    if out[-1]["role"] != "user":
        raise ApiError(400, "the last message must be the user's", param="messages")
    return out


def openai_router(tenants: Tenants, access: ApiAccess) -> APIRouter:
    """The /v1 routes over the app's tenants (and so over its one loaded base model)."""
    router = APIRouter(prefix="/v1")

    def variants_for(request: Request):
        return tenants.get(access.user(request.headers.get("authorization")))

    @router.get("/models")
    def list_models(request: Request):
        try:
            tenant = variants_for(request)
            data = [{"id": f"{project}/{name}", "object": "model", "created": 0, "owned_by": "tunewise"}
                    for project in tenant.workspace.list_projects() for name in tenant.variants.names(project)]
        except ApiError as error:
            return error.response()
        return {"object": "list", "data": data}

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        try:
            tenant = variants_for(request)
            try:
                body = await request.json()
            except ValueError as error:
                raise ApiError(400, "the body must be JSON") from error
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be a JSON object")
            model = str(body.get("model") or "")
            project, variant_name = split_model(model)
            if project not in tenant.workspace.list_projects():
                raise ApiError(404, f"The model '{model}' does not exist: there is no project named '{project}'",
                               "invalid_request_error", "model_not_found", "model")
            try:
                variant = tenant.variants.resolve(project, variant_name)
            except (ValueError, AdapterBaseMismatchError) as error:
                raise ApiError(404, f"The model '{model}' does not exist: {error}", "invalid_request_error",
                               "model_not_found", "model") from error
            messages = messages_from(body)
            generation = generation_from(body)
            model_variants = tenant.variants.for_project(project)
            search = tenant.variants.search(project) if variant.retrieval else None
        except ApiError as error:
            return error.response()
        except WorkspaceError as error:
            return ApiError(404, str(error), code="model_not_found", param="model").response()
        answers = model_variants.stream(variant, messages, generation, search)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.get("stream"):
            return StreamingResponse(stream_chunks(answers, completion_id, created, model),
                                     media_type="text/event-stream")
        final = None
        for final in answers:  # noqa: B007 - the last update is the whole answer
            pass
        tokens = model_variants.loaded.tokenizer
        usage_in = sum(len(tokens(m["content"], add_special_tokens=False)["input_ids"]) for m in messages)
        usage_out = len(tokens(final.text, add_special_tokens=False)["input_ids"]) if final and final.text else 0
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": final.text if final else ""},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out,
                          "total_tokens": usage_in + usage_out},
                "tunewise": {"sources": [source_dict(s) for s in (final.sources if final else ())]}}

    return router


def source_dict(source) -> dict:
    """A cited source (assistant.runtime.answering.Source) as JSON: number, source, page, section,
    snippet, start, end."""
    return asdict(source)


def stream_chunks(answers, completion_id: str, created: int, model: str):
    """Server-sent events in OpenAI's chunk format: the role, the text as it grows, then the end."""

    def event(delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
        chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    sent, final = "", None
    for final in answers:
        # The final answer may differ from the streamed text (citations attributed at the end);
        # only text that extends what was sent can be streamed as a delta.
        if final.text.startswith(sent) and len(final.text) > len(sent):
            yield event({"content": final.text[len(sent):]})
            sent = final.text
    sources = [source_dict(s) for s in (final.sources if final else ())]
    yield event({}, "stop", {"tunewise": {"sources": sources}})
    yield "data: [DONE]\n\n"
