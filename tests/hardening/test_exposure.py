"""The app listens on loopback unless passwords (or an explicit --insecure) protect it."""

import pytest

from ui.cli import main
from ui.exposure import ExposureError, check_exposure, is_loopback, parse_auth


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("192.168.1.5", False),
                                            ("example.org", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_non_loopback_needs_auth_or_insecure():
    check_exposure("127.0.0.1", [], False)
    check_exposure("0.0.0.0", [("ana", "pw")], False)
    check_exposure("0.0.0.0", [], True)
    with pytest.raises(ExposureError, match="--auth"):
        check_exposure("0.0.0.0", [], False)


def test_auth_from_a_value_or_a_file(tmp_path):
    assert parse_auth("ana:s3cret:with:colons") == [("ana", "s3cret:with:colons")]
    users = tmp_path / "users.txt"
    users.write_text("# team\nana:one\n\nbo:two\n")
    assert parse_auth(str(users)) == [("ana", "one"), ("bo", "two")]
    users.write_text("ana\n")
    with pytest.raises(ExposureError, match="line 1"):
        parse_auth(str(users))


def test_serve_refuses_to_expose_the_app_without_protection(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--auth" in capsys.readouterr().err


def test_an_empty_host_is_judged_by_what_gradio_will_bind(monkeypatch, capsys):
    from ui.exposure import bound_host

    assert bound_host("", {"GRADIO_SERVER_NAME": "0.0.0.0"}) == "0.0.0.0"
    assert bound_host("", {}) == "127.0.0.1" and bound_host("10.0.0.2", {"GRADIO_SERVER_NAME": "::1"}) == "10.0.0.2"
    assert is_loopback("") is False  # a socket bound to "" listens on every interface
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert main(["serve", "--host", ""]) == 2  # the bypass: refused, no login, before anything listens
    assert "--host 0.0.0.0" in capsys.readouterr().err


def test_reads_never_create_projects(tmp_path):
    from assistant.services.advisor import Advisor
    from assistant.services.knowledge import KnowledgeBases
    from assistant.services.workspace import Workspace, WorkspaceError

    workspace = Workspace(tmp_path)
    with pytest.raises(WorkspaceError, match="no project named 'ghost'"):
        Advisor(workspace).plan("ghost")
    with pytest.raises(WorkspaceError, match="no project named 'ghost'"):
        KnowledgeBases(workspace).get("ghost")
    assert workspace.list_projects() == [] and not (tmp_path / "projects" / "ghost").exists()
