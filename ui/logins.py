"""Sign-in for `tunewise serve --auth`: salted password hashes and a brake on guessing.

A users file holds one ``name:scrypt$N$r$p$salt$hash`` line per user, written by
``tunewise users add NAME`` (which prompts for the password); the standard library's scrypt
(memory-hard, salted per user) makes a stolen file slow to crack. A plain ``name:password``
(a file line, or ``--auth`` on the command line for a quick trial) still works, with a warning.

:class:`Logins` is what the login page and ``/v1``'s ``Bearer USER:PASSWORD`` call with each
attempt. Gradio gives the check no client address, so anything it remembers is per user name,
and anyone can send attempts for any name. Four promises follow from that:

* **No lockout.** A right password is always checked and always let in, however many wrong ones
  others sent for the name: refusing without checking (the old brake) let anyone lock anyone out.
* **Guessing is slow instead.** After ``max_failures`` wrong passwords for a name within
  ``window_s``, that name's checks take turns ``spacing_s`` apart, so one guesser gets one guess
  per ``spacing_s`` (12 a minute with the defaults, not the ~20 a second scrypt alone allows).
  No call waits more than ``max_wait_s`` for its turn, so a flood of wrong guesses delays the real
  user's sign-in by at most that. The price of that bound: calls that find the queue full run
  after ``max_wait_s`` anyway, so a guesser with P connections open at once gets up to P guesses
  per ``max_wait_s``, capped by the server's worker threads (Starlette's 40: about 8 a second),
  which also ties up the whole server. A reverse proxy's per-address limit is the cure for that;
  this brake is what remains without one.
* **Nothing tells who exists.** Every check costs exactly one scrypt with this module's parameters
  (an unknown name or a plain-text password is run against a fixed dummy hash), and unknown names
  are braked like known ones.
* **Memory is bounded.** The table of failures holds at most ``max_names`` names (as digests),
  least recently seen first out, each forgotten ``window_s`` after its last failure, so a flood of
  made-up names holds a few MiB, not one entry per name ever tried. Pushing a name out lifts its
  brake, but costs ``max_names`` scrypt checks (minutes of CPU) for ``max_failures`` quick guesses:
  slower than waiting one's turn. A right password does not lift the brake either, so the user's own
  traffic never buys a guesser quick tries; after their own typos the user waits a turn for a minute.

The wait is a plain sleep in the calling thread: callers on an event loop (Gradio's ``/login``
route is async and calls a plain function on the loop) use :meth:`Logins.check_in_worker`, which
runs the same check in a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tunewise.errors import InputError

SCHEME = "scrypt"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A ``scrypt$N$r$p$salt$hash`` line for the users file, with a fresh salt unless one is given."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    encode = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt)}${encode(digest)}"


def is_hashed(stored: str) -> bool:
    """Whether a stored password is a hash from :func:`hash_password` (else it is plain text)."""
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


@cache
def dummy_hash() -> str:
    """A hash of no one's password, made once, for checks that have no hash of their own to spend
    scrypt on (an unknown name, a plain-text password): they then take as long as a real check."""
    return hash_password(os.urandom(16).hex())


@dataclass(frozen=True)
class BrakeSettings:
    """How guessing one name's password is slowed (the module docstring says why this way)."""

    max_failures: int = 9
    """Wrong passwords for a name, within ``window_s``, before its checks take turns."""
    window_s: float = 60.0
    """How long a failure counts; a name with no failure this recent is forgotten."""
    spacing_s: float = 5.0
    """While braked, a name's checks start at least this far apart, and this long after its last failure."""
    max_wait_s: float = 5.0
    """The longest one call waits for its turn: the most a flood of wrong guesses delays a right password."""
    max_names: int = 10_000
    """Names remembered at once; beyond it the least recently seen goes, so memory stays bounded."""

    def __post_init__(self):
        if self.max_failures < 1 or self.max_names < 1:
            raise InputError("max_failures and max_names are at least 1")
        if min(self.window_s, self.spacing_s, self.max_wait_s) < 0:
            raise InputError("window_s, spacing_s and max_wait_s are not negative")


@dataclass(slots=True)
class NameRecord:
    """What the brake remembers about one name."""

    failures: list[float] = field(default_factory=list)
    """Times of the newest ``max_failures`` wrong passwords, oldest first: enough to tell whether
    ``max_failures`` fell within the window, and no more."""
    next_turn: float = 0.0
    """While braked, the earliest time the name's next check may start."""


def name_key(name: str) -> bytes:
    """A fixed-size stand-in for a name in the failure table."""
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class FailureTable:
    """Recent failures per name, bounded in size; says how long a check must wait for its turn.

    Names are kept as 16-byte digests: a name is whatever a client sends, a megabyte included.
    Thread-safe; times come from the caller, so it is tested with plain numbers.
    """

    def __init__(self, settings: BrakeSettings):
        self.settings = settings
        self._records: OrderedDict[bytes, NameRecord] = OrderedDict()  # least recently seen first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def wait_before_check(self, name: str, now: float) -> float:
        """Seconds a check for ``name`` starting at ``now`` waits for its turn (0 unless braked);
        takes that turn, so the next caller queues behind it."""
        settings, key = self.settings, name_key(name)
        with self._lock:
            self._forget_expired(now)
            record = self._records.get(key)
            if record is None or not self._braked(record, now):
                return 0.0
            turn = max(now, record.next_turn, record.failures[-1] + settings.spacing_s)
            wait = min(turn - now, settings.max_wait_s)
            # A call past the queue's end runs at max_wait_s without pushing the queue further out,
            # so the wait after a flood ends is bounded too.
            record.next_turn = now + wait + settings.spacing_s
            self._records.move_to_end(key)
            return wait

    def record_failure(self, name: str, now: float) -> None:
        """Remember a wrong password for ``name``; forget the least recently seen name if full."""
        key = name_key(name)
        with self._lock:
            self._forget_expired(now)
            record = self._records.setdefault(key, NameRecord())
            record.failures.append(now)
            del record.failures[:-self.settings.max_failures]
            self._records.move_to_end(key)
            while len(self._records) > self.settings.max_names:
                self._records.popitem(last=False)

    def _braked(self, record: NameRecord, now: float) -> bool:
        failures = record.failures
        return len(failures) >= self.settings.max_failures and now - failures[0] <= self.settings.window_s

    def _forget_expired(self, now: float) -> None:
        """Drop names from the least recently seen end while they have nothing left to remember."""
        while self._records:
            record = next(iter(self._records.values()))
            if now - record.failures[-1] <= self.settings.window_s or record.next_turn > now:
                return
            self._records.popitem(last=False)


class Logins:
    """The check the login page and ``/v1`` call for each sign-in attempt (see the module docstring).

    ``clock`` and ``sleep`` are injected so tests run the brake on a fake clock in no time.
    """

    def __init__(self, users: dict[str, str], brake: BrakeSettings | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.users, self.brake, self.clock, self.sleep = dict(users), brake or BrakeSettings(), clock, sleep
        self.failures = FailureTable(self.brake)
        dummy_hash()  # made now, so the first unknown name does not pay for it and stand out

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]], brake: BrakeSettings | None = None, **options) -> Logins:
        """From ``(name, stored password)`` pairs, as ``ui.exposure.parse_auth`` reads them."""
        return cls(dict(pairs), brake, **options)

    def plain_users(self) -> list[str]:
        """Names whose password is stored in plain text (``serve`` warns about them)."""
        return sorted(name for name, stored in self.users.items() if not is_hashed(stored))

    def __call__(self, username: str, password: str) -> bool:
        """Whether ``password`` is ``username``'s; waits first if the name is braked, then always checks."""
        wait = self.failures.wait_before_check(username, self.clock())
        if wait > 0:
            self.sleep(wait)
        ok = self._matches(username, password)
        if not ok:
            self.failures.record_failure(username, self.clock())
        return ok

    async def check_in_worker(self, username: str, password: str) -> bool:
        """The same check for a caller on an event loop: the wait and the scrypt run in a worker thread,
        so a braked name's attempts never stall the server's other requests."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self, username, password)

    def _matches(self, username: str, password: str) -> bool:
        """Spends one scrypt whoever asks: a known name's hash, else the dummy hash."""
        stored = self.users.get(username)
        hashed = stored is not None and is_hashed(stored)
        matches_hash = verify_password(password, stored if hashed else dummy_hash())
        if stored is None:
            return False
        return matches_hash if hashed else verify_password(password, stored)


def add_user(path: str | Path, name: str, password: str) -> None:
    """Write ``name`` with a fresh hash into the users file (replacing an earlier line for the name)."""
    from trainers.atomic_files import write_text_atomic

    if not name or ":" in name or name != name.strip():
        raise InputError("a user name is not empty, has no ':' and no surrounding spaces")
    if len(password) < 8:
        raise InputError("use a password of at least 8 characters")
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    write_text_atomic(path, "\n".join([*kept, f"{name}:{hash_password(password)}"]) + "\n")
    os.chmod(path, 0o600)
