"""What the person who starts the server allows its web users to reach: judges and models.

A web user of ``tunewise serve`` is not the operator. The server makes outbound requests and
loads weights on their behalf, so which judge endpoints it calls and which models it loads are
the operator's choice, made once on the command line and carried here:

    tunewise serve --judge-url http://127.0.0.1:8000/v1 --judge-name qwen2.5-7b \\
                   --model-dir /srv/models [--allow-private-judge] [--allow-downloads]

The web forms then choose among what this policy offers, looked up by label on the server: a
URL or a folder sent by a browser is never used as such. The CLI's own flags stay free (the CLI
user is the operator). The decisions are plain functions over plain data; only
:func:`offered_models` reads the disk (the Hugging Face cache and the ``--model-dir`` folders).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from assistant.core.errors import TunewiseError

JUDGE_URL_ENV, JUDGE_NAME_ENV, JUDGE_KEY_ENV = "TUNEWISE_JUDGE_URL", "TUNEWISE_JUDGE_NAME", "TUNEWISE_JUDGE_KEY"
LOADED_MODEL_JUDGE = "the loaded model"
"""The judge every web user may choose (and the default): the app's own model, no outbound request."""
MODEL_NOT_OFFERED = ("that model is not one of the models this server offers; ask the operator to add it with "
                     "serve --model-dir")
"""One sentence for every refused model, so that it says nothing about what exists on the server's disk."""


class OperatorPolicyError(TunewiseError, ValueError):
    """The operator's flags do not make a usable policy (a judge URL without a model name...)."""


@dataclass(frozen=True)
class JudgeEndpoint:
    """An OpenAI-compatible judge the operator offers to web users."""

    url: str
    """The API's base URL, e.g. http://127.0.0.1:8000/v1 (``/chat/completions`` is appended)."""
    model: str
    """The model name to ask for there."""
    api_key: str | None = None
    """Sent as ``Authorization: Bearer``; never shown to web users."""
    label: str = ""
    """What the Compare tab's list shows and what a browser sends back (default: the model name)."""
    allow_private: bool = False
    """Whether this endpoint may resolve to a loopback, private or link-local address."""

    def __post_init__(self):
        if not self.url.strip() or not self.model.strip():
            raise OperatorPolicyError("a judge endpoint needs a URL and a model name",
                                      "pass --judge-url URL --judge-name MODEL")
        if not self.label:
            object.__setattr__(self, "label", self.model)


@dataclass(frozen=True)
class OperatorPolicy:
    """What web users may reach. The default offers no judge endpoint and no extra model folder."""

    judge_endpoints: tuple[JudgeEndpoint, ...] = ()
    """Judges the Compare tab offers besides the loaded model (``serve --judge-url``)."""
    model_dirs: tuple[Path, ...] = ()
    """Folders whose model folders web users may load or train on (``serve --model-dir``)."""
    allow_private_judge: bool = False
    """Let every judge endpoint resolve to loopback, private or link-local addresses
    (``serve --allow-private-judge``)."""
    allow_downloads: bool = False
    """Whether ``serve`` left the Hugging Face hub online (``serve --allow-downloads``)."""
    _by_label: dict[str, JudgeEndpoint] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "judge_endpoints", tuple(self.judge_endpoints))
        object.__setattr__(self, "model_dirs", tuple(Path(d).expanduser().absolute() for d in self.model_dirs))
        for endpoint in self.judge_endpoints:
            if endpoint.label == LOADED_MODEL_JUDGE or endpoint.label in self._by_label:
                raise OperatorPolicyError(f"two judges would be listed as {endpoint.label!r}",
                                          "give each --judge-url a different --judge-name")
            self._by_label[endpoint.label] = endpoint

    def judge_labels(self) -> list[str]:
        """The Compare tab's judge choices: the loaded model first, then the operator's endpoints."""
        return [LOADED_MODEL_JUDGE, *self._by_label]

    def judge(self, label: str | None) -> JudgeEndpoint | None:
        """The operator's endpoint listed as ``label``; None for anything else, a URL included."""
        return self._by_label.get(label or "")

    def may_reach_private(self, endpoint: JudgeEndpoint) -> bool:
        return self.allow_private_judge or endpoint.allow_private


def literal_loopback(url: str) -> bool:
    """Whether ``url`` names a loopback host outright (127.x, ::1, localhost): an operator who types
    that means this machine, so the endpoint needs no ``--allow-private-judge``."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def literal_private(url: str) -> bool:
    """Whether ``url`` names, as a literal IP address, one a judge needs leave to be called at."""
    from assistant.services.judge import refused_address

    try:
        return refused_address(urlsplit(url).hostname or "")
    except ValueError:  # a name: resolved, and checked, at each request
        return False


def judge_endpoints_from_flags(urls: Sequence[str] | None, names: Sequence[str] | None,
                               keys: Sequence[str] | None = None) -> tuple[JudgeEndpoint, ...]:
    """``serve``'s repeated ``--judge-url``/``--judge-name``/``--judge-key``, paired in order.

    Keys: none, or one per URL ("" for an endpoint without one), so that one endpoint's key is
    never sent to another. An endpoint on a literal loopback address is allowed to be private.
    """
    from assistant.services.judge import check_judge_url

    urls, names, keys = list(urls or []), list(names or []), list(keys or [])
    if len(names) != len(urls):
        raise OperatorPolicyError(f"{len(urls)} --judge-url but {len(names)} --judge-name",
                                  "give one --judge-name (the model to ask) after each --judge-url")
    if keys and len(keys) != len(urls):
        raise OperatorPolicyError(f"{len(urls)} --judge-url but {len(keys)} --judge-key",
                                  "give no --judge-key, or one per --judge-url ('' for none)")
    endpoints = []
    for position, (url, name) in enumerate(zip(urls, names, strict=True)):
        url = check_judge_url(url)
        endpoints.append(JudgeEndpoint(url, name.strip(), (keys[position] if keys else "") or None,
                                       allow_private=literal_loopback(url)))
    labels = [e.model for e in endpoints]
    # The same model served at two addresses: the host tells them apart in the list.
    return tuple(e if labels.count(e.model) == 1 else JudgeEndpoint(
        e.url, e.model, e.api_key, f"{e.model} at {urlsplit(e.url).netloc}", e.allow_private) for e in endpoints)


def judge_endpoints_from_env(environ: dict | None = None) -> tuple[JudgeEndpoint, ...]:
    """One endpoint from $TUNEWISE_JUDGE_URL, $TUNEWISE_JUDGE_NAME and $TUNEWISE_JUDGE_KEY, if set."""
    environ = os.environ if environ is None else environ
    url = environ.get(JUDGE_URL_ENV, "").strip()
    if not url:
        return ()
    return judge_endpoints_from_flags([url], [environ.get(JUDGE_NAME_ENV, "")],
                                      [environ.get(JUDGE_KEY_ENV, "")])


# --- models ---------------------------------------------------------------------------------------


def within(name: str, folders: Iterable[Path]) -> bool:
    """Whether the path ``name`` is one of ``folders`` or below one, by its spelling alone.

    No ``..`` is accepted and symlinks are not followed: a web user cannot make links, so a link
    inside an operator's folder is the operator's choice, and the answer does not depend on what
    exists on disk.
    """
    if not name.startswith(("/", "~")) or ".." in Path(name).parts:
        return False
    try:
        path = Path(os.path.normpath(Path(name).expanduser()))
    except RuntimeError:  # ~someone who has no home here
        return False
    return any(path == folder or folder in path.parents for folder in folders)


def model_dir_choices(model_dirs: Iterable[Path]) -> list[tuple[str, str]]:
    """(name, label) for each model folder the operator put in a ``--model-dir``: the folder itself
    when it holds a model, and each subfolder that does (one with a config.json)."""
    found = []
    for folder in model_dirs:
        candidates = [folder]
        with contextlib.suppress(OSError):  # a folder gone or unreadable since serve started offers nothing
            candidates += sorted(p for p in folder.iterdir() if p.is_dir())
        found += [(str(c), f"{c.name} (model folder)") for c in candidates if (c / "config.json").is_file()]
    return found


def offered_models(policy: OperatorPolicy, current: str, adapter_bases: Sequence[str] = (),
                   started_with: str | None = None) -> list[tuple[str, str]]:
    """(label, name) for every model web users may choose: the bundled one and the Hugging Face
    cache's (assistant.runtime.models.local_model_choices), the bases of the project's adapters, the
    folders under the operator's ``--model-dir``, the model in use and the one the server started
    with (``serve --model``), so that a switch can always be undone."""
    from assistant.runtime.models import local_model_choices

    choices = [(c.label, c.name) for c in local_model_choices(list(adapter_bases))]
    names = {name for _, name in choices}
    for name, label in model_dir_choices(policy.model_dirs):
        if name not in names:
            choices.append((label, name))
            names.add(name)
    for name in (current, started_with):
        if name and name not in names:
            choices.append((name, name))
            names.add(name)
    return choices


def model_offered(name: str, offered: Iterable[str], policy: OperatorPolicy) -> bool:
    """Whether a web user may use the model ``name``: one of the ``offered`` names, or a folder
    under the operator's ``--model-dir``."""
    name = (name or "").strip()
    return bool(name) and (name in set(offered) or within(name, policy.model_dirs))
