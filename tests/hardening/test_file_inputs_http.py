"""Nothing is read that was not uploaded: every file input of the app ``tunewise serve`` builds
(Gradio mounted into FastAPI, /v1 beside it) takes only files the client uploaded into Gradio's
cache. Called over real HTTP, as a hostile client would: a file value is JSON the client writes,
so it can name any path on the server."""

import os

import httpx
import pytest

from tests.served import QueueCaller, file_value, served

SECRET = "The vault code is 4417-zebra-cobalt."


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from ui.app import build_app

    return build_app(tmp_path / "ws")


@pytest.fixture
def secret(tmp_path):
    """A file on the server that no client uploaded."""
    path = tmp_path / "elsewhere" / "secret.md"
    path.parent.mkdir()
    path.write_text(f"# Private\n\n{SECRET}\n")
    return path


def upload(url: str, name: str, content: bytes, cookies=None) -> str:
    """Upload through Gradio's upload route, as the page does; the path it gives back."""
    response = httpx.post(f"{url}/gradio_api/upload", files=[("files", (name, content))], cookies=cookies)
    response.raise_for_status()
    return response.json()[0]


def ingest(caller: QueueCaller, values: list) -> list[str]:
    """Ingest ``values`` as one upload; what the client is told about each (refusals named)."""
    result = caller.call(caller.event(api_name="ingest"), [values, "default"])
    if not result["success"]:  # refused by Gradio's own check (on since serve turns it on)
        return [f"refused: {result['output']['error']}"] * len(values)
    return [f"{row[1]}: {row[3]}" for row in result["output"]["data"][0]["data"]]


def refused(told: str) -> bool:
    return told.startswith("refused")


def indexed_sources(app) -> list[str]:
    return [d.source for d in app.tenants.get(None).knowledge.get("default", create=True).documents()]


def test_a_file_value_naming_a_server_path_is_refused_and_nothing_is_indexed(app, secret):
    with served(app) as url:
        caller = QueueCaller(url)
        assert refused(ingest(caller, [file_value(secret)])[0])
        search = caller.call(caller.event(api_name="search"), ["vault code zebra", 5, "bm25", "default"])
        assert SECRET not in str(search["output"])
    assert indexed_sources(app) == []


def test_an_uploaded_file_is_indexed(app):
    with served(app) as url:
        caller = QueueCaller(url)
        path = upload(url, "notes.md", f"# Notes\n\n{SECRET}\n".encode())
        assert not refused(ingest(caller, [file_value(path, "notes.md")])[0])
    assert indexed_sources(app) == ["notes.md"]


def test_links_devices_fifos_and_oversized_files_in_the_cache_are_refused(app, secret, tmp_path):
    from ui.uploads import MAX_UPLOAD_BYTES, upload_folder

    with served(app) as url:
        caller = QueueCaller(url)
        cache = upload_folder() / "planted.md"  # a folder with a document's suffix
        cache.mkdir(parents=True)
        link = cache / "link.md"
        link.symlink_to(secret)
        fifo = cache / "pipe.md"
        os.mkfifo(fifo)  # reading it would block a worker for good
        huge = cache / "huge.md"
        with open(huge, "wb") as out:  # sparse: costs no disk
            out.truncate(MAX_UPLOAD_BYTES + 1)
        for planted in (link, fifo, huge, cache):  # each alone: one refusal must not hide another
            told = ingest(caller, [file_value(planted)])
            assert refused(told[0]) and ("not uploaded" in told[0] or "not a regular file" in told[0]
                                         or "upload limit" in told[0]), (planted, told)
        assert "over the 200 MB upload limit" in ingest(caller, [file_value(huge)])[0]
        assert all(refused(told) for told in ingest(caller, [file_value("/dev/zero"),
                                                            file_value(f"{cache}/../../../etc/hostname")]))
    assert indexed_sources(app) == []


def test_a_refusal_does_not_say_whether_the_path_exists(app, secret):
    with served(app) as url:
        caller = QueueCaller(url)
        told = [ingest(caller, [file_value(path)])[0].replace(str(path), "PATH")
                for path in (secret, secret.parent / "absent.md")]
        assert refused(told[0]) and told[0] == told[1]


def test_example_and_evaluation_file_inputs_refuse_server_paths(app, secret):
    with served(app) as url:
        caller = QueueCaller(url)
        check = caller.event(trigger="bh-check")
        inputs = caller.inputs_of(check)
        data = [component_default(caller, i) for i in inputs]
        data[0] = file_value(secret)  # the training examples
        data[inputs.index(caller.component_id("project-select"))] = "default"
        assert "not uploaded" in str(caller.call(check, data)["output"])
        gap = caller.call(caller.event(trigger="ev-gap"), [file_value(secret), 20, "default"])
        assert not gap["success"] and "not uploaded" in str(gap["output"])
        measure = caller.call(caller.event(trigger="kb-eval-run"), [file_value(secret), "default"])
        assert not measure["success"] and "not uploaded" in str(measure["output"])
    datasets = app.tenants.get(None).workspace.project("default").path / "datasets"
    assert not datasets.exists() or SECRET not in "".join(p.read_text() for p in datasets.rglob("*") if p.is_file())


def test_with_sign_in_one_user_cannot_read_anothers_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from ui.app import build_app
    from ui.logins import Logins

    app = build_app(tmp_path / "ws")
    logins = Logins.from_pairs([("ana", "pw-ana-123"), ("bo", "pw-bo-123")])
    ana_project = app.tenants.get("ana").workspace.project("default").path
    (ana_project / "votes.csv").write_text(f"prompt,completion\nwhat is the code?,{SECRET}\n")
    with served(app, auth=logins) as url:
        bo = QueueCaller(url).login("bo", "pw-bo-123")
        check = bo.event(trigger="bh-check")
        inputs = bo.inputs_of(check)
        data = [component_default(bo, i) for i in inputs]
        data[0] = file_value(ana_project / "votes.csv")
        data[inputs.index(bo.component_id("project-select"))] = "default"
        assert "not uploaded" in str(bo.call(check, data)["output"])
    bo_files = app.tenants.get("bo").workspace.root
    assert SECRET not in "".join(p.read_text(errors="ignore") for p in bo_files.rglob("*") if p.is_file())


def component_default(caller: QueueCaller, component_id: int):
    component = next(c for c in caller.config["components"] if c["id"] == component_id)
    return component.get("props", {}).get("value")
