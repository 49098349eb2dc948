"""Sign-in: the users file holds salted hashes, and guessing a password is braked per user."""

import io

import pytest

from ui.cli import main
from ui.exposure import parse_auth
from ui.logins import Logins, hash_password, is_hashed, verify_password


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


def test_the_tenth_wrong_password_in_a_minute_is_refused_without_checking():
    now = [0.0]
    checked = []
    logins = Logins({"ana": hash_password("right-password")}, clock=lambda: now[0])
    for _ in range(9):
        assert not logins("ana", "guess")
    original = verify_password

    def counting(password, stored):
        checked.append(password)
        return original(password, stored)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ui.logins.verify_password", counting)
        assert not logins("ana", "right-password")  # braked: not even the right one is checked
        assert checked == []
        assert logins("bo", "x") is False and checked == []  # unknown users are never checked either
        now[0] = 61.0
        assert logins("ana", "right-password") and checked == ["right-password"]  # the window has passed


def test_the_app_signs_in_through_the_hashed_check(tmp_path):
    import httpx

    from tests.ui.serving import launched
    from ui.app import build_app

    logins = Logins({"ana": hash_password("right-password")})
    with launched(build_app(tmp_path / "ws"), auth=logins) as url:
        good = httpx.post(f"{url.rstrip('/')}/login", data={"username": "ana", "password": "right-password"})
        bad = httpx.post(f"{url.rstrip('/')}/login", data={"username": "ana", "password": "wrong"})
    assert good.status_code == 200 and bad.status_code >= 400
