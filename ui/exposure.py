"""Who may reach the app: loopback by default; anything else needs passwords or an explicit choice."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from assistant.core.errors import TunewiseError


class ExposureError(TunewiseError):
    """The requested binding would expose the app without protection; the message says what to add."""


GRADIO_HOST_ENV = "GRADIO_SERVER_NAME"


def bound_host(host: str | None, environ: dict | None = None) -> str:
    """The address the server will actually listen on: Gradio replaces an empty or missing host with
    $GRADIO_SERVER_NAME (else 127.0.0.1), so the check must judge that address, and the app passes
    it to Gradio explicitly. An empty string given to a socket means every interface."""
    import os

    environ = os.environ if environ is None else environ
    if host:
        return host
    return environ.get(GRADIO_HOST_ENV) or "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    if not host:
        return False  # "" binds every interface
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> list[tuple[str, str]]:
    """``user:password``, or a file with one ``user:password`` per line (blank lines and # comments
    ignored)."""
    if not value:
        return []
    path = Path(value)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [value]
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            where = f"{value} line {number}" if path.is_file() else "--auth"
            raise ExposureError(f"{where}: expected user:password")
        pairs.append((user, password))
    return pairs


def check_exposure(host: str, auth: list[tuple[str, str]], insecure: bool) -> None:
    """Refuse to listen beyond this machine without passwords, unless told to on purpose."""
    if is_loopback(host) or auth or insecure:
        return
    raise ExposureError(f"--host {host} makes the app reachable from other machines: add --auth user:password "
                        "(or a file of them), or pass --insecure if the network is trusted")


LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(host_header: str | None) -> str:
    """The name in a Host header (or an origin's authority), without port or IPv6 brackets, lowercased."""
    value = (host_header or "").strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def is_local_host_header(host_header: str | None) -> bool:
    """Whether a request's Host names this machine. A server on loopback answers only these: a page
    on another site that re-points its own name at 127.0.0.1 (DNS rebinding) sends its own name."""
    name = host_name(host_header)
    return name in LOCAL_NAMES or name.endswith(".localhost")


def is_same_origin(origin: str | None, host_header: str | None) -> bool:
    """Whether a request's Origin (sent by browsers on cross-site requests) is this server itself;
    no Origin (curl, SDKs, servers) counts as same-origin."""
    if origin is None:
        return True
    scheme, sep, authority = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https"):
        return False
    return authority.rstrip("/") == (host_header or "").strip().lower()
