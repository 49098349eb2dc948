"""Sign-in for `tunewise serve --auth`: salted password hashes and a brake on guessing.

A users file holds one ``name:scrypt$N$r$p$salt$hash`` line per user, written by
``tunewise users add NAME`` (which prompts for the password); the standard library's scrypt
(memory-hard, salted per user) makes a stolen file slow to crack. A plain ``name:password``
(a file line, or ``--auth`` on the command line for a quick trial) still works, with a warning.

:class:`Logins` is what Gradio calls with each attempt: after ``max_failures`` wrong passwords for
one user within ``window_s`` seconds, further attempts for that user are refused without checking
until the window has passed, so guessing runs at a few tries a minute. Gradio gives the check no
client address, so the brake is per user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path

SCHEME = "scrypt"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    encode = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt)}${encode(digest)}"


def is_hashed(stored: str) -> bool:
    return stored.startswith(SCHEME + "$")


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a hash from :func:`hash_password`, or plain text)."""
    if not is_hashed(stored):
        return hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8"))
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


class Logins:
    """The check Gradio calls for each sign-in attempt (see the module docstring)."""

    def __init__(self, users: dict[str, str], max_failures: int = 9, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.users, self.max_failures, self.window_s, self.clock = dict(users), max_failures, window_s, clock
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]], **options) -> Logins:
        return cls(dict(pairs), **options)

    def plain_users(self) -> list[str]:
        return sorted(name for name, stored in self.users.items() if not is_hashed(stored))

    def __call__(self, username: str, password: str) -> bool:
        now = self.clock()
        with self._lock:
            failures = self._failures[username]
            while failures and now - failures[0] > self.window_s:
                failures.popleft()
            if len(failures) >= self.max_failures:
                return False  # refused without checking until the window has passed
        stored = self.users.get(username)
        ok = stored is not None and verify_password(password, stored)
        if not ok:
            with self._lock:
                self._failures[username].append(now)
        return ok


def add_user(path: str | Path, name: str, password: str) -> None:
    """Write ``name`` with a fresh hash into the users file (replacing an earlier line for the name)."""
    from trainers.atomic_files import write_text_atomic

    if not name or ":" in name or name != name.strip():
        raise ValueError("a user name is not empty, has no ':' and no surrounding spaces")
    if len(password) < 8:
        raise ValueError("use a password of at least 8 characters")
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    write_text_atomic(path, "\n".join([*kept, f"{name}:{hash_password(password)}"]) + "\n")
    os.chmod(path, 0o600)
