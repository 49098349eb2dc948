"""Sign-in: the users file holds salted hashes; guessing is braked per name without locking anyone out,
and a check costs the same whether or not the name exists."""

import asyncio
import hashlib
import io
import os
import tracemalloc
from dataclasses import dataclass, field

import pytest

from ui.cli import main
from ui.exposure import parse_auth
from ui.logins import SCRYPT_N, BrakeSettings, Logins, hash_password, is_hashed, verify_password

BRAKE = BrakeSettings()


@dataclass
class FakeTime:
    """A clock and a sleep for the brake. ``parallel``: sleeping does not move the clock, so every call
    arrives at the same instant, as the calls of a flood on many connections do."""

    now: float = 0.0
    parallel: bool = False
    waits: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if not self.parallel:
            self.now += seconds


@pytest.fixture
def checks(monkeypatch) -> list[str]:
    """A scrypt-free check, so a test can send thousands of attempts: ``scrypt$fake$PASSWORD`` matches
    PASSWORD. The passwords checked, in order."""
    checked = []

    def fake_verify(password: str, stored: str) -> bool:
        checked.append(password)
        return stored == f"scrypt$fake${password}"

    monkeypatch.setattr("ui.logins.verify_password", fake_verify)
    return checked


def braked_logins(time: FakeTime, **brake) -> Logins:
    """Ana (password ``right-password``) and Bo, on the fake clock, after nine wrong guesses for Ana."""
    logins = Logins({"ana": "scrypt$fake$right-password", "bo": "scrypt$fake$bo-password"},
                    BrakeSettings(**brake), clock=time.clock, sleep=time.sleep)
    for _ in range(logins.brake.max_failures):
        assert not logins("ana", "guess")
    assert time.waits == []  # the first nine cost nothing extra
    return logins


def test_a_password_is_stored_as_a_salted_scrypt_hash():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert is_hashed(first) and first != second  # a fresh salt each time
    assert verify_password("correct horse", first) and not verify_password("correct hors", first)
    assert verify_password("plain", "plain") and not verify_password("plain", "other")


def test_users_add_writes_a_hash_that_serve_accepts(tmp_path, monkeypatch, capsys):
    users = tmp_path / "users.txt"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-passphrase\n"))
    assert main(["users", "add", "ana", "--file", str(users), "--password-stdin"]) == 0
    text = users.read_text()
    assert text.startswith("ana:scrypt$") and "s3cret" not in text
    assert oct(users.stat().st_mode)[-3:] == "600"
    logins = Logins.from_pairs(parse_auth(str(users)))
    assert logins("ana", "s3cret-passphrase") and not logins("ana", "wrong") and not logins("bo", "x")
    assert logins.plain_users() == []


def test_a_short_password_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "ana", "--file", str(tmp_path / "u.txt"), "--password-stdin"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err


def test_after_nine_wrong_guesses_a_patient_guesser_gets_one_guess_per_spacing(checks):
    time = FakeTime()
    logins = braked_logins(time)
    guesses = 0
    while time.now < 600 and guesses < 1000:  # ten minutes of guessing, one attempt after another
        assert not logins("ana", f"guess-{guesses}")
        guesses += 1
    assert guesses <= 600 / BRAKE.spacing_s + 1  # 12 a minute, where scrypt alone allows ~20 a second
    assert time.waits[0] == BRAKE.spacing_s and max(time.waits) <= BRAKE.spacing_s
    waits_before = len(time.waits)
    assert logins("bo", "bo-password") and len(time.waits) == waits_before  # other names are not slowed


def test_a_flood_of_wrong_guesses_never_refuses_the_right_password_and_delays_it_at_most_max_wait(checks):
    time = FakeTime(parallel=True)
    logins = braked_logins(time)
    for _ in range(1000):
        assert not logins("ana", "guess")
    del checks[:]
    assert logins("ana", "right-password")  # the old brake refused it here, without checking
    assert checks == ["right-password"]
    assert time.waits[-1] == BRAKE.max_wait_s and max(time.waits) <= BRAKE.max_wait_s


def test_once_the_flood_stops_the_wait_is_bounded_and_ends_with_the_window(checks):
    time = FakeTime(parallel=True)
    logins = braked_logins(time)
    for _ in range(1000):
        logins("ana", "guess")
    time.now += 1.0
    logins("ana", "right-password")
    assert time.waits[-1] <= BRAKE.max_wait_s  # the flood queued no debt for later callers
    time.now += BRAKE.window_s + BRAKE.max_wait_s + BRAKE.spacing_s
    waits_before = len(time.waits)
    assert logins("ana", "right-password") and len(time.waits) == waits_before
    assert len(logins.failures) == 0  # forgotten: nothing left to remember


@pytest.mark.parametrize("name, stored, password, expected", [
    ("ana", "hashed", "right-password", True),
    ("ana", "hashed", "wrong", False),
    ("nobody", None, "right-password", False),
    ("ana", "right-password", "right-password", True),  # a plain-text line in the users file
    ("ana", "right-password", "wrong", False),
])
def test_every_check_spends_one_scrypt_whether_or_not_the_name_exists(monkeypatch, name, stored, password,
                                                                     expected):
    users = {"ana": hash_password("right-password") if stored == "hashed" else stored} if stored else {}
    logins = Logins(users)
    real_scrypt, costs = hashlib.scrypt, []

    def counted(*args, **kwargs):
        costs.append((kwargs["n"], kwargs["r"], kwargs["p"]))
        return real_scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    assert logins(name, password) is expected
    assert costs == [(SCRYPT_N, 8, 1)]


def test_unknown_names_are_braked_like_known_ones(checks):
    time = FakeTime()
    logins = Logins({"ana": "scrypt$fake$right-password"}, clock=time.clock, sleep=time.sleep)
    for name in ("ana", "nobody"):
        for _ in range(BRAKE.max_failures + 1):
            logins(name, "guess")
    assert time.waits == [BRAKE.spacing_s, BRAKE.spacing_s]  # the brake itself tells no one who exists


@pytest.mark.parametrize("names, name_bytes", [(200_000, 8), (2_000, 32_768)])
def test_the_failure_table_stays_bounded_for_floods_of_made_up_names(monkeypatch, names, name_bytes):
    monkeypatch.setattr("ui.logins.verify_password", lambda password, stored: stored == f"scrypt$fake${password}")
    logins = Logins({"ana": "scrypt$fake$right-password"}, BrakeSettings(max_names=min(names, BRAKE.max_names)))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(names):
            assert not logins(os.urandom(name_bytes).hex(), "x")
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 16 * 2 ** 20  # ~3 MiB; the old table: 169 MiB for the short names, 127 MiB for the long
    assert len(logins.failures) == min(names, BRAKE.max_names)
    assert logins("ana", "right-password")


def test_event_loop_callers_get_the_same_check_from_a_worker_thread(checks):
    logins = Logins({"ana": "scrypt$fake$right-password"})

    async def both():
        return await logins.check_in_worker("ana", "right-password"), await logins.check_in_worker("ana", "no")

    assert asyncio.run(both()) == (True, False)


@pytest.mark.parametrize("setting", [{"max_failures": 0}, {"max_names": 0}, {"max_wait_s": -1.0}])
def test_nonsense_brake_settings_are_refused(setting):
    with pytest.raises(ValueError):
        BrakeSettings(**setting)


def test_the_app_signs_in_through_the_hashed_check(tmp_path):
    import httpx

    from tests.ui.serving import launched
    from ui.app import build_app

    logins = Logins({"ana": hash_password("right-password")})
    with launched(build_app(tmp_path / "ws"), auth=logins) as url:
        good = httpx.post(f"{url.rstrip('/')}/login", data={"username": "ana", "password": "right-password"})
        bad = httpx.post(f"{url.rstrip('/')}/login", data={"username": "ana", "password": "wrong"})
    assert good.status_code == 200 and bad.status_code >= 400
