"""Parse untrusted uploads in a worker process that a hostile file cannot take past its limits.

A crafted PDF, DOCX or HTML file can make a parser run for minutes or fill memory; in the
server's own process that would slow or kill the app for every user. Here every file is parsed
(``loaders.load_bytes``) in a separate process with a CPU-time budget per file
(``RLIMIT_CPU``, reset before each file), an address-space cap (``RLIMIT_AS``) and a wall-clock
timeout. A file that breaks a limit costs that worker, which is replaced; the caller gets a
:class:`DocumentError` naming the limit. The server's threads wait on a pipe meanwhile, holding
no lock, so other requests go on.

Where the platform has no ``resource`` module (Windows), files are parsed in-process with the
size limits only.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from retrieval.documents import Document, DocumentError
from retrieval.loaders import UploadLimits, load_bytes

try:
    import resource
except ImportError:  # pragma: no cover - not on Linux or macOS
    resource = None

_pool: ProcessPoolExecutor | None = None
_pool_key: tuple | None = None
_pool_lock = threading.Lock()


def _limit_worker(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _parse_with_budget(source: str, data: bytes, limits: UploadLimits) -> Document:
    """In the worker: give this file its own CPU budget on top of what the worker has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = spent + limits.parse_cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    try:
        return load_bytes(source, data, limits)
    except MemoryError as error:
        raise DocumentError(source, f"needs more than {limits.parse_memory_bytes / 1e9:.1f} GB to parse",
                            "split it into parts or save it as plain text") from error
    except RecursionError as error:
        raise DocumentError(source, "is nested too deeply to parse", "save it as plain text") from error


def _get_pool(limits: UploadLimits) -> ProcessPoolExecutor:
    global _pool, _pool_key
    key = (limits.parse_memory_bytes,)
    if _pool is None or _pool_key != key:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        # spawn: a fork of a threaded server (Gradio, uvicorn) can deadlock in the child
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_limit_worker, initargs=(limits.parse_memory_bytes,))
        _pool_key = key
    return _pool


def _discard_pool() -> None:
    global _pool
    if _pool is not None:
        for process in list(getattr(_pool, "_processes", {}).values()):
            process.kill()  # a parse stuck past its wall time
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def parse_upload(source: str, data: bytes, limits: UploadLimits | None = None) -> Document:
    """``load_bytes`` in the limited worker; a DocumentError for bad files and for broken limits."""
    limits = limits or UploadLimits()
    if resource is None:
        return load_bytes(source, data, limits)
    with _pool_lock:  # one file at a time per server: a hostile upload queues, it does not multiply
        try:
            return _get_pool(limits).submit(_parse_with_budget, source, data, limits).result(
                timeout=limits.parse_wall_seconds)
        except DocumentError:
            raise
        except (BrokenProcessPool, FutureTimeout) as error:
            _discard_pool()
            raise DocumentError(source, f"took more than the parsing limits ({limits.parse_cpu_seconds} s of CPU, "
                                        f"{limits.parse_memory_bytes / 1e9:.1f} GB of memory, "
                                        f"{limits.parse_wall_seconds:.0f} s in all)",
                                "split it into parts or save it as plain text") from error


def shutdown() -> None:
    """Stop the worker (tests, and the app on exit)."""
    with _pool_lock:
        _discard_pool()
