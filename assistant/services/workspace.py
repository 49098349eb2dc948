"""Projects on disk: one folder per project under ``<workspace>/projects/``.

A project keeps its interview (answers and transcript), profile and plan in
``project.json``; later issues add its index, datasets, adapters, jobs and votes as
sibling folders (see docs/architecture.md). Every write goes to a temporary file in
the same folder and is renamed over the old one, so a crash leaves the old file or
the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.core.errors import TunewiseError
from assistant.core.outcomes import with_outcome_history
from trainers.atomic_files import write_json_atomic

DEFAULT_WORKSPACE = "tunewise-data"
DEFAULT_PROJECT = "default"
WORKSPACE_ENV = "TUNEWISE_WORKSPACE"
PROJECT_FILE = "project.json"
LOCKS_DIR = ".locks"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class WorkspaceError(TunewiseError):
    """A project operation that cannot be done; the message says why, for a person."""


def resolve_workspace(path: str | os.PathLike | None = None) -> Path:
    """The workspace folder: an explicit path, else $TUNEWISE_WORKSPACE, else ./tunewise-data."""
    return Path(path or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).expanduser().resolve()


def check_project_name(name: Any) -> str:
    """A project name is also a folder name, so it is kept to a safe alphabet."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise WorkspaceError(
            f"{name!r} is not a valid project name: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit.")
    return name


@dataclass(frozen=True)
class Project:
    name: str
    path: Path

    @property
    def file(self) -> Path:
        return self.path / PROJECT_FILE


def user_folder(user: str) -> str:
    """The folder that holds ``user``'s projects: readable, and unique per exact name.

    The readable part keeps a safe alphabet (no ``/`` or ``..`` can reach the path); the
    hash of the exact name keeps "Alice" and "alice" apart, even on a case-insensitive disk.
    """
    import hashlib

    readable = re.sub(r"[^A-Za-z0-9_-]", "_", user)[:32] or "user"
    return f"{readable}-{hashlib.sha256(user.encode('utf-8')).hexdigest()[:10]}"


class Workspace:
    """Named projects in one folder. Safe to share between the threads of one app.

    ``owner`` is the signed-in user the workspace belongs to (see :meth:`for_user`), or None
    for the workspace itself when nobody signs in. ``machine_dir`` holds what all users of the
    machine share (the training queue); a user's workspace shares its parent's.
    """

    def __init__(self, root: str | os.PathLike | None = None, owner: str | None = None,
                 machine_dir: str | os.PathLike | None = None):
        self.root = resolve_workspace(root)
        self.owner = owner
        self.machine_dir = Path(machine_dir) if machine_dir else self.root / "machine"
        self.projects_dir = self.root / "projects"
        self._locks: dict[str, threading.RLock] = {}
        self._file_locks: dict[str, int] = {}
        self._locks_guard = threading.Lock()
        try:
            self.projects_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WorkspaceError(f"cannot create the workspace at {self.root}: {error.strerror}") from error
        self.clean_interrupted_deletes()

    def for_user(self, user: str | None) -> Workspace:
        """The workspace of one signed-in user, under ``<root>/users/``; this one for None.

        With sign-in on, every user works in their own workspace, so no one lists, opens or
        changes another's projects.
        """
        if user is None:
            return self
        if self.owner is not None:
            raise WorkspaceError(f"this is already {self.owner!r}'s workspace")
        return Workspace(self.root / "users" / user_folder(user), owner=user, machine_dir=self.machine_dir)

    def lock(self, name: str) -> threading.RLock:
        """One lock per project, so two requests cannot interleave a read and a write."""
        with self._locks_guard:
            return self._locks.setdefault(name, threading.RLock())

    def project(self, name: str) -> Project:
        return Project(check_project_name(name), self.projects_dir / name)

    def list_projects(self) -> list[str]:
        return sorted(p.name for p in self.projects_dir.iterdir()
                      if p.is_dir() and (p / PROJECT_FILE).exists() and _NAME.match(p.name))

    def exists(self, name: str) -> bool:
        return self.project(name).file.exists()

    def create(self, name: str) -> Project:
        project = self.project(name)
        with self.lock(name):
            if project.file.exists():
                raise WorkspaceError(f"a project named {name!r} already exists")
            write_json_atomic(project.file, {"name": name}, sort_keys=True)
        return project

    def ensure(self, name: str = DEFAULT_PROJECT) -> Project:
        """The project, created empty if it does not exist yet."""
        project = self.project(name)
        with self.lock(name):
            if not project.file.exists():
                write_json_atomic(project.file, {"name": name}, sort_keys=True)
        return project

    def load(self, name: str) -> dict[str, Any]:
        project = self.project(name)
        if not project.file.exists():
            raise WorkspaceError(f"there is no project named {name!r}")
        try:
            return json.loads(project.file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise WorkspaceError(f"project {name!r} cannot be read ({error}); its file is "
                                 f"{project.file}") from error

    def stamp(self, name: str) -> str:
        """The version of a project's record, for a page to see that it changed without reading it:
        every write renames a new file over project.json (a new inode, time and size). Empty when the
        project does not exist."""
        try:
            info = self.project(name).file.stat()
        except OSError:
            return ""
        return f"{name}:{info.st_ino}:{info.st_mtime_ns}:{info.st_size}"

    def update(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """Read the project's record, let ``change`` edit it (in place, or by returning a new dict),
        and write it back, all under the project's lock, so no concurrent update is lost: the one
        way anything writes project.json. Returns the record as written.

        Evidence is never lost on the way: an outcome (whether the plan held on an evaluation) that
        the change replaces is kept in the record's "outcome_history", whoever wrote the new one."""
        with self.locked(name):
            data = self.load(name)
            previous = copy.deepcopy(data.get("outcome"))
            changed = change(data)
            data = with_outcome_history(previous, data if changed is None else changed)
            self._write(name, data)
        return data

    @contextlib.contextmanager
    def locked(self, name: str):
        """The project's lock across the threads of this process and across processes (the app and
        a CLI command may update one project at the same time)."""
        import fcntl

        check_project_name(name)  # the name becomes a lock file name
        with self.lock(name):  # re-entrant: the file lock is taken by the outermost holder only
            if self._file_locks.get(name):
                self._file_locks[name] += 1
                try:
                    yield
                finally:
                    self._file_locks[name] -= 1
                return
            locks = self.projects_dir / LOCKS_DIR  # beside the projects: a rename or delete keeps it
            locks.mkdir(exist_ok=True)
            with open(locks / f"{name}.lock", "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._file_locks[name] = 1
                try:
                    yield
                finally:
                    self._file_locks[name] = 0
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, name: str, data: dict[str, Any]) -> None:
        project = self.project(name)
        try:
            write_json_atomic(project.file, data | {"name": name}, sort_keys=True)
        except OSError as error:
            raise WorkspaceError(f"cannot save project {name!r}: {error.strerror or error}") from error

    def rename(self, old: str, new: str) -> Project:
        source, target = self.project(old), self.project(new)
        with self.lock(old), self.lock(new):
            if not source.file.exists():
                raise WorkspaceError(f"there is no project named {old!r}")
            if target.path.exists():
                raise WorkspaceError(f"a project named {new!r} already exists")
            source.path.rename(target.path)
            data = json.loads(target.file.read_text(encoding="utf-8"))
            write_json_atomic(target.file, data | {"name": new}, sort_keys=True)
        return target

    def delete(self, name: str) -> None:
        project = self.project(name)
        with self.lock(name):
            if not project.file.exists():
                raise WorkspaceError(f"there is no project named {name!r}")
            # Rename first so a crash mid-delete never leaves a half-deleted project that lists.
            doomed = project.path.with_name(f".deleting-{name}")
            shutil.rmtree(doomed, ignore_errors=True)  # what an earlier, interrupted delete left
            try:
                project.path.rename(doomed)
            except OSError as error:
                raise WorkspaceError(f"cannot delete project {name!r}: {error.strerror or error}") from error
            shutil.rmtree(doomed, ignore_errors=True)

    def clean_interrupted_deletes(self) -> int:
        """Remove what deletes cut short (``.deleting-*`` folders); returns how many."""
        leftovers = list(self.projects_dir.glob(".deleting-*"))
        for folder in leftovers:
            shutil.rmtree(folder, ignore_errors=True)
        return len(leftovers)
