"""Server mode against a real `chroma run` on 127.0.0.1, and ingest + search with no network."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from retrieval.index import ChromaSettings, DocumentIndex, IndexUnavailableError, collection_name
from retrieval.ingest import ingest_items
from retrieval.search import search

DOC = b"# Returns\n\nItems can be returned within 30 days with the receipt.\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    chroma = Path(sys.executable).with_name("chroma")
    process = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=os.environ | {"ANONYMIZED_TELEMETRY": "False"})
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("chroma run did not start within 60 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_server_mode_ingests_searches_and_recovers_from_an_outage(tmp_path, embedder):
    port = free_port()
    server = start_chroma(tmp_path / "server-data", port)
    try:
        settings = ChromaSettings(url=f"http://127.0.0.1:{port}", collection=collection_name("my project"))
        index = DocumentIndex(tmp_path / "index.sqlite", settings)
        assert ingest_items(index, embedder, [("returns.md", DOC)])[0].status == "added"
        assert index.vector_count() == index.chunk_count() == 1
        assert search(index, embedder, "return window", k=1, mode="dense")[0].source == "returns.md"

        stop(server)
        with pytest.raises(IndexUnavailableError, match="127.0.0.1"):
            search(index, embedder, "return window", k=1, mode="dense")
        server = start_chroma(tmp_path / "server-data", port)
        assert search(index, embedder, "return window", k=1, mode="dense")[0].source == "returns.md"
        index.close()
    finally:
        stop(server)


def test_collection_names_are_valid_for_chroma():
    for project in ("default", "my project", "a", "x" * 64, "weird__name.."):
        name = collection_name(project)
        assert 3 <= len(name) <= 512 and name[0].isalnum() and name[-1].isalnum()


OFFLINE_SCRIPT = textwrap.dedent("""
    import socket, sys
    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    from pathlib import Path
    from retrieval.embeddings import Embedder
    from retrieval.index import ChromaSettings, DocumentIndex
    from retrieval.ingest import ingest_items
    from retrieval.search import search
    root = Path(sys.argv[1])
    index = DocumentIndex(root / "i.sqlite", ChromaSettings(path=root / "chroma"))
    embedder = Embedder()
    result = ingest_items(index, embedder, [("returns.md", %r)])
    hits = search(index, embedder, "how long to return an item", k=1)
    print(result[0].status, hits[0].source)
""") % DOC


def _run_offline(command: list[str], tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2],
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_ingest_and_search_with_outbound_connections_refused(tmp_path):
    """Python-level: every socket connect and DNS lookup raises; the hub variables are unset."""
    line = _run_offline([sys.executable, "-c", OFFLINE_SCRIPT, str(tmp_path)], tmp_path)
    assert line == "added returns.md"


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and unshare to make a network namespace")
@pytest.mark.slow
def test_ingest_and_search_inside_a_namespace_without_network(tmp_path):
    """Kernel-level: a fresh network namespace has no route anywhere, not even loopback."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    line = _run_offline(["unshare", "-n", sys.executable, "-c", OFFLINE_SCRIPT, str(tmp_path)], tmp_path)
    assert line == "added returns.md"
