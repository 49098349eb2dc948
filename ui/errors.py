"""Errors as a person reads them, in one place for both faces.

:func:`explain` turns any error Tunewise raises for people (the one :class:`TunewiseError` family,
tunewise/errors.py, which retrieval/ and trainers/ share) into one sentence; anything else is a
bug, which :func:`report_unexpected` logs with its traceback and shows as "unexpected error
(logged)". The web app wraps every event handler with :func:`shows_errors` (see
:func:`guard_handlers`); the CLI's ``main`` has one ``except`` that calls :func:`explain`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from tunewise.errors import TunewiseError

log = logging.getLogger("tunewise")


def explain(error: BaseException) -> str | None:
    """What to tell a person about an error meant for people (message, then hint); None for
    anything else, which is a bug. Every error the project raises for people is a TunewiseError
    (tunewise/errors.py), retrieval/ and trainers/ included; a bare ValueError is not one."""
    if isinstance(error, TunewiseError):
        return str(error)
    return None


def error_log() -> Path:
    """Where unexpected errors' tracebacks go ($TUNEWISE_ERROR_LOG, else the temp folder)."""
    return Path(os.environ.get("TUNEWISE_ERROR_LOG") or Path(tempfile.gettempdir()) / "tunewise-errors.log")


def report_unexpected(error: BaseException) -> str:
    """Append ``error``'s traceback to the error log; the short line a person sees instead."""
    path = error_log()
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            out.write("".join(traceback.format_exception(error)))
        where = str(path)
    except OSError:
        where = "the server's output"
        log.error("unexpected error", exc_info=error)
    return f"unexpected error (logged): {type(error).__name__}: {str(error)[:200]}. The details are in {where}."


def _as_gradio_error(error: Exception):
    import gradio as gr

    if isinstance(error, gr.Error):  # a handler's own message for people, no bug: no traceback either
        error.print_exception = False
        return error
    explained = explain(error)
    text = explained or report_unexpected(error)
    # A sentence on the page (the CLI keeps "error: what"). An error meant for people is no bug: the
    # server's console gets no traceback for it; a bug's trace is in the error log already.
    return gr.Error(text[:1].upper() + text[1:], print_exception=False)


def shows_errors(fn: Callable) -> Callable:
    """Wrap a Gradio event handler so that any error reaches the page as a clear message (a
    ``gr.Error``), never as a bare "Error" or a traceback. Keeps the handler's kind (function,
    generator, coroutine) and signature, which Gradio reads to pass requests and stream."""
    if getattr(fn, "shows_errors", False):
        return fn
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def wrapped(*args, **kwargs):
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except Exception as error:
                raise _as_gradio_error(error) from error
    elif inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapped(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except Exception as error:
                raise _as_gradio_error(error) from error
    elif inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                raise _as_gradio_error(error) from error
    else:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                raise _as_gradio_error(error) from error
    wrapped.shows_errors = True
    return wrapped


def guard_handlers(blocks) -> int:
    """Wrap every event handler registered on ``blocks`` with :func:`shows_errors`; returns how many."""
    wrapped = 0
    for block_fn in blocks.fns.values():
        if block_fn.fn is not None and not getattr(block_fn.fn, "shows_errors", False):
            block_fn.fn = shows_errors(block_fn.fn)
            wrapped += 1
    return wrapped
