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

import asyncio
import hmac
import itertools
import json
import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from assistant.runtime.generation import GenerationSettings, ModelBusyError
from assistant.runtime.variants import AdapterBaseMismatchError
from assistant.services.tenants import Tenants
from assistant.services.workspace import WorkspaceError
from tunewise.errors import TunewiseError
from ui.exposure import is_same_origin

MAX_NEW_TOKENS = 1024


@dataclass(frozen=True)
class ApiLimits:
    """What one /v1 request may ask of the server; each refusal is a 4xx naming the limit."""

    max_body_bytes: int = 1_000_000
    """A chat request is a few KB; 1 MB leaves room for long documents pasted into a message."""
    max_prompt_tokens: int = 8192
    """Also capped by the model's own context, less the answer's room."""
    max_json_depth: int = 32
    busy_wait_s: float = 10.0
    """How long a request waits for the model while others answer, before a 503 with Retry-After."""
    retry_after_s: int = 5


class ApiError(TunewiseError):
    """An error to answer in OpenAI's shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.code, self.param = status, kind, code, param

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


def _number(body: dict, name: str, default: float, kind=float) -> float:
    """A numeric field: absent or null gives ``default``; anything but a finite number (a string, a
    bool, NaN, Infinity) is a 400 naming the field."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(400, f"{name} must be a number", param=name)
    if kind is int and value != int(value):
        raise ApiError(400, f"{name} must be a whole number", param=name)
    return kind(value)


def generation_from(body: dict) -> GenerationSettings:
    """OpenAI's sampling fields onto the runtime's settings (greedy unless a temperature is given)."""
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number(body, name, 256, int)
    temperature = _number(body, "temperature", 0.0)
    top_p = _number(body, "top_p", 1.0)
    if not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise ApiError(400, f"{name} must be between 1 and {MAX_NEW_TOKENS}", param=name)
    if not 0 <= temperature <= 2:
        raise ApiError(400, "temperature must be between 0 and 2", param="temperature")
    if not 0 < top_p <= 1:
        raise ApiError(400, "top_p must be above 0 and at most 1", param="top_p")
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
            parts = [part for part in content if isinstance(part, dict) and part.get("type", "text") == "text"]
            if len(parts) != len(content) or not all(isinstance(part.get("text"), str) for part in parts):
                raise ApiError(400, "each content part must be {\"type\": \"text\", \"text\": \"...\"}",
                               param="messages")
            content = "".join(part["text"] for part in parts)
        if not isinstance(content, str):
            raise ApiError(400, "each message's content must be text", param="messages")
        out.append({"role": "system" if message["role"] == "developer" else message["role"], "content": content})
    if out[-1]["role"] != "user":
        raise ApiError(400, "the last message must be the user's", param="messages")
    return out


def _depth(value, limit: int) -> int:
    """How deeply ``value`` nests lists and objects, counting no further than ``limit`` + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_body(raw: bytes, limits: ApiLimits) -> dict:
    """The request body as a JSON object: Infinity and NaN refused, nesting bounded; ApiError 400."""
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ApiError(400, f"the body must be JSON ({reason})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if _depth(body, limits.max_json_depth) > limits.max_json_depth:
        raise ApiError(400, f"the body nests deeper than {limits.max_json_depth} levels")
    return body


async def read_body(request: Request, limits: ApiLimits) -> bytes:
    """The body, refused with a 413 as soon as it passes the limit (before it is all read)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limits.max_body_bytes):
        raise ApiError(413, f"the body is over {limits.max_body_bytes:,} bytes", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise ApiError(413, f"the body is over {limits.max_body_bytes:,} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def check_browser_safety(request: Request) -> None:
    """A browser on another site may send simple POSTs (text/plain, no preflight) to a local server;
    requiring JSON forces a CORS preflight, which this API never grants, and a foreign Origin is
    refused outright."""
    if not is_same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise ApiError(403, "cross-site requests are not accepted", code="forbidden_origin")
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if request.method == "POST" and media_type != "application/json":
        raise ApiError(415, "send the body as Content-Type: application/json", code="unsupported_media_type")


def prompt_tokens(tokenizer, messages: list[dict]) -> int:
    return sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in messages)


def context_limit(loaded, limits: ApiLimits, max_new_tokens: int) -> int:
    """The longest prompt this request may send: the API's cap, within the model's own context."""
    context = getattr(getattr(loaded.model, "config", None), "max_position_embeddings", None)
    return min(limits.max_prompt_tokens, context - max_new_tokens) if isinstance(context, int) else \
        limits.max_prompt_tokens


def openai_router(tenants: Tenants, access: ApiAccess, limits: ApiLimits | None = None) -> APIRouter:
    """The /v1 routes over the app's tenants (and so over its one loaded base model)."""
    limits = limits or ApiLimits()
    router = APIRouter(prefix="/v1")

    def variants_for(request: Request):
        check_browser_safety(request)
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
        """Nothing here blocks the event loop: the model is reached from worker threads, so one slow
        or stuck answer never stalls the app's other requests."""
        try:
            tenant = await run_in_threadpool(variants_for, request)  # a password check takes ~50 ms
            body = parse_body(await read_body(request, limits), limits)
            model = body.get("model")
            if not isinstance(model, str):
                raise ApiError(400, "model must be a string naming PROJECT/VARIANT", param="model")
            stream = body.get("stream", False)
            if not isinstance(stream, bool):
                raise ApiError(400, "stream must be true or false", param="stream")
            messages = messages_from(body)
            generation = generation_from(body)
            project, variant_name = split_model(model)
            prepared = await run_in_threadpool(prepare, tenant, model, project, variant_name, messages, generation)
        except ApiError as error:
            return error.response()
        except WorkspaceError as error:
            return ApiError(404, str(error), code="model_not_found", param="model").response()
        model_variants, variant, aids, usage_in = prepared
        stop = threading.Event()
        answers = model_variants.stream(variant, messages, generation, aids, stop, limits.busy_wait_s)
        try:
            first = await run_in_threadpool(next, answers, None)  # waits for the model: busy gives a 503 here
        except ModelBusyError as error:
            stop.set()
            return busy_response(error, limits)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        events = stream_chunks(answers, first, completion_id, created, model)
        if stream:
            return StreamingResponse(until_disconnected(events, stop), media_type="text/event-stream")
        watcher = asyncio.ensure_future(stop_when_gone(request, stop))
        try:
            final = await run_in_threadpool(last_of, answers, first)
        finally:
            stop.set()
            watcher.cancel()
        tokens = model_variants.loaded.tokenizer
        usage_out = len(tokens(final.text, add_special_tokens=False)["input_ids"]) if final and final.text else 0
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": final.text if final else ""},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out,
                          "total_tokens": usage_in + usage_out},
                "tunewise": {"sources": [source_dict(s) for s in (final.sources if final else ())],
                             "few_shot_examples": list(final.shots) if final else []}}

    def prepare(tenant, model: str, project: str, variant_name: str, messages: list[dict], generation):
        """The variant to answer as, on the project's model (loaded on first use), with its aids (search,
        few-shot examples); the prompt checked against the context. Runs in a worker thread: it may load a model."""
        if project not in tenant.workspace.list_projects():
            raise ApiError(404, f"The model '{model}' does not exist: there is no project named '{project}'",
                           "invalid_request_error", "model_not_found", "model")
        try:
            variant = tenant.variants.resolve(project, variant_name)
        except (ValueError, AdapterBaseMismatchError) as error:
            raise ApiError(404, f"The model '{model}' does not exist: {error}", "invalid_request_error",
                           "model_not_found", "model") from error
        if sum(len(m["content"]) for m in messages) > limits.max_body_bytes:
            raise ApiError(400, "the messages are too long", param="messages", code="context_length_exceeded")
        model_variants = tenant.variants.for_project(project)
        allowed = context_limit(model_variants.loaded, limits, generation.max_new_tokens)
        used = prompt_tokens(model_variants.loaded.tokenizer, messages)
        if used > allowed:
            raise ApiError(400, f"the messages are {used} tokens; this model takes at most {allowed} with "
                                f"max_tokens={generation.max_new_tokens}", param="messages",
                           code="context_length_exceeded")
        aids = tenant.variants.aids(project) if variant.modifiers else None
        return model_variants, variant, aids, used  # used: the prompt tokens, reported as usage

    return router


def busy_response(error: ModelBusyError, limits: ApiLimits) -> JSONResponse:
    response = ApiError(503, f"{error.user_text()}", "server_error", "model_busy").response()
    response.headers["Retry-After"] = str(limits.retry_after_s)
    return response


def last_of(answers, first):
    """The last update of a stream of answers (the whole answer), ``first`` already taken from it."""
    final = first
    for final in answers:  # noqa: B007 - the last update is the whole answer
        pass
    return final


async def stop_when_gone(request: Request, stop: threading.Event, every_s: float = 0.25) -> None:
    """Set ``stop`` when the client of a non-streaming request disconnects, so its answer stops."""
    while not stop.is_set():
        if await request.is_disconnected():
            stop.set()
            return
        await asyncio.sleep(every_s)


async def until_disconnected(events, stop: threading.Event):
    """The events of a streamed answer, pulled from worker threads; when the response ends for any
    reason (done, the client gone, the server stopping), ``stop`` is set and the generation ends
    at its next token, releasing the model for the next request."""
    try:
        while (event := await run_in_threadpool(next, events, None)) is not None:
            yield event
    finally:
        stop.set()


def source_dict(source) -> dict:
    """A cited source (assistant.runtime.answering.Source) as JSON: number, source, page, section,
    snippet, start, end."""
    return asdict(source)


def stream_chunks(answers, first, completion_id: str, created: int, model: str):
    """Server-sent events in OpenAI's chunk format: the role, the text as it grows, then the end.
    ``first`` is the answer's first update, already taken from ``answers``."""

    def event(delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
        chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    sent, final = "", None
    for final in itertools.chain([first] if first is not None else [], answers):
        # The final answer may differ from the streamed text (citations attributed at the end);
        # only text that extends what was sent can be streamed as a delta.
        if final.text.startswith(sent) and len(final.text) > len(sent):
            yield event({"content": final.text[len(sent):]})
            sent = final.text
    sources = [source_dict(s) for s in (final.sources if final else ())]
    yield event({}, "stop", {"tunewise": {"sources": sources}})
    yield "data: [DONE]\n\n"
