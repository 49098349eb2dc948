"""The judge: agreement arithmetic, both orders against position bias, and its agreement with
blind votes whose answer is known, through a real OpenAI-compatible HTTP endpoint."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assistant.core.agreement import agreement
from assistant.services.arena import Vote, VoteStore
from assistant.services.judge import (
    HttpJudge,
    JudgeError,
    ModelJudge,
    check_against_votes,
    check_project_judge,
    judge_pair,
    parse_verdict,
    saved_agreement,
)
from assistant.services.workspace import Workspace


def test_agreement_and_kappa_match_a_hand_computed_case():
    # 10 items, labels yes/no: 7 agree. Rater 1: 6 yes; rater 2: 5 yes. Chance = .6*.5 + .4*.5 = .5.
    first = ["y"] * 6 + ["n"] * 4
    second = ["y", "y", "y", "y", "n", "n", "y", "n", "n", "n"]
    measured = agreement(first, second)
    assert (measured.n, measured.agreed, measured.percent) == (10, 7, 70.0)
    assert measured.kappa == pytest.approx((0.7 - 0.5) / (1 - 0.5))
    assert agreement(["a"] * 4, ["a"] * 4).kappa is None  # both always say the same thing: undefined
    assert agreement([], []).n == 0


def test_verdicts_are_read_from_what_judges_write():
    assert parse_verdict("Verdict: B\nReason: it follows the format.") == ("b", "it follows the format.")
    assert parse_verdict("**Verdict:** tie\nReason: both fine")[0] == "tie"
    assert parse_verdict("I cannot decide.")[0] is None


def serve_judge(decide):
    """A real OpenAI-compatible /chat/completions on 127.0.0.1 whose verdict is ``decide(A, B)``."""

    def reply_to(text: str) -> str:
        first = text.split("Answer A:\n")[1].split("\n\nAnswer B:")[0]
        return f"Verdict: {decide(first, text.split('Answer B:')[1].strip())}\nReason: rule"

    return serve_replies(reply_to)


def serve_replies(reply_to):
    """A real OpenAI-compatible /chat/completions on 127.0.0.1 answering ``reply_to(last user message)``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            content = reply_to(body["messages"][-1]["content"])
            reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def fair_judge():
    """Prefers the answer that says "right", wherever it is shown."""
    server = serve_judge(lambda a, b: "A" if "right" in a and "right" not in b else
                         "B" if "right" in b and "right" not in a else "tie")
    yield HttpJudge(f"http://127.0.0.1:{server.server_address[1]}/v1", "rule-judge", allow_private=True)
    server.shutdown()


@pytest.fixture
def biased_judge():
    """Always prefers whichever answer it is shown first."""
    server = serve_judge(lambda a, b: "A")
    yield HttpJudge(f"http://127.0.0.1:{server.server_address[1]}/v1", "first-judge", allow_private=True)
    server.shutdown()


VOTES = [Vote("base", "tuned", "b", "q1", "wrong", "right"),     # judge: b  (agrees)
         Vote("base", "tuned", "a", "q2", "right", "wrong"),     # judge: a  (agrees)
         Vote("tuned", "base", "tie", "q3", "right", "right"),   # judge: tie (agrees)
         Vote("base", "tuned", "a", "q4", "wrong", "right"),     # judge: b  (disagrees)
         Vote("base", "tuned", "both_bad", "q5", "meh", "bad")]  # judge: tie; both bad counts as tie (agrees)


def test_the_judges_agreement_with_known_votes(fair_judge):
    result = check_against_votes(fair_judge, VOTES)
    assert [i["judge"] for i in result.items] == ["b", "a", "tie", "b", "tie"]
    assert (result.votes, result.percent) == (5, 80.0)
    # votes a,a,b,tie,tie vs judge a,b,b,tie,tie in sorted labels -> kappa by hand:
    # observed .8; chance = (2/5*1/5) + (1/5*2/5) + (2/5*2/5) = .08+.08+.16 = .32; kappa = .48/.68
    assert result.kappa == pytest.approx(0.48 / 0.68, abs=1e-3)
    assert result.consistent_percent == 100.0  # a fair judge never flips when the answers swap
    assert "agrees with your blind votes on 80% of 5 pairs" in result.summary()


def test_a_judge_that_favours_the_first_answer_is_caught_by_the_swap(biased_judge):
    verdict = judge_pair(biased_judge, "q", "one", "two")
    assert (verdict.as_shown, verdict.swapped, verdict.outcome) == ("a", "b", "tie")
    result = check_against_votes(biased_judge, VOTES)
    assert {i["judge"] for i in result.items} == {"tie"} and result.consistent_percent == 0.0


def test_a_projects_check_is_saved_with_rubric_verdicts_and_reasons(tmp_path, fair_judge):
    workspace = Workspace(tmp_path / "ws")
    workspace.ensure("default")
    store = VoteStore(workspace.project("default").path / "tunewise.sqlite")
    for vote in VOTES:
        store.add(vote)
    store.close()
    result = check_project_judge(workspace, "default", fair_judge)
    saved = saved_agreement(workspace, "default")
    assert saved.percent == result.percent == 80.0 and "strict judge" in saved.rubric
    assert saved.items[0]["reasons"] == ["rule", "rule"]


def test_a_judge_url_that_does_not_answer_is_a_clear_error():
    with pytest.raises(JudgeError, match="did not answer") as raised:
        HttpJudge("http://127.0.0.1:9/v1", "nobody", timeout=2, allow_private=True).complete(
            [{"role": "user", "content": "hi"}])
    assert "refused" not in str(raised.value).lower() and "connect" not in str(raised.value).lower()


# --- the URL a judge is called at -----------------------------------------------------------------

REFUSED_SHAPES = {
    "a query turns /chat/completions into its value": ("http://example.com/admin?x=", "query"),
    "a bare question mark": ("http://example.com/v1?", "query"),
    "a fragment": ("http://example.com/v1#", "fragment"),
    "user info": ("http://user:pw@example.com/v1", "user name"),
    "user info hiding the host": ("http://example.com@10.0.0.1/v1", "user name"),
    "another scheme": ("file:///etc/passwd", "not http"),
    "gopher": ("gopher://example.com:70/_", "not http"),
    "no scheme": ("example.com/v1", "not http"),
    "no host": ("http:///v1", "no host"),
    "a port that is not a number": ("http://example.com:port/v1", "cannot be read"),
    "a space": ("http://example.com/v1 /x", "spaces"),
}


@pytest.mark.parametrize(("url", "problem"), REFUSED_SHAPES.values(), ids=REFUSED_SHAPES.keys())
def test_a_judge_url_of_the_wrong_shape_is_refused_before_any_request(url, problem):
    from assistant.services.judge import check_judge_url

    with pytest.raises(JudgeError, match=problem):
        check_judge_url(url)
    with pytest.raises(JudgeError, match=problem):
        HttpJudge(url, "m", allow_private=True)  # even where private addresses are allowed (the CLI)


def test_a_judge_url_of_the_right_shape_is_kept_without_its_trailing_slash():
    from assistant.services.judge import check_judge_url

    assert check_judge_url(" https://api.example.com/v1/ ") == "https://api.example.com/v1"
    assert check_judge_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"


ADDRESSES = {  # address: refused without the operator's leave
    "127.0.0.1": True, "127.8.9.1": True, "::1": True, "0.0.0.0": True, "::": True,
    "10.1.2.3": True, "172.16.0.1": True, "192.168.1.1": True, "100.64.0.1": True,  # private, shared (CGNAT)
    "169.254.169.254": True, "fe80::1%eth0": True,  # link-local: cloud metadata, a zoned IPv6
    "224.0.0.1": True, "239.255.255.250": True, "ff02::1": True,  # multicast
    "240.0.0.1": True, "255.255.255.255": True, "fc00::1": True,  # reserved, broadcast, unique local
    "::ffff:127.0.0.1": True, "::ffff:10.0.0.1": True, "2002:7f00:1::": True,  # IPv4 inside IPv6
    "8.8.8.8": False, "1.1.1.1": False, "2606:4700:4700::1111": False, "::ffff:8.8.8.8": False,
}


@pytest.mark.parametrize(("address", "refused"), ADDRESSES.items(), ids=ADDRESSES.keys())
def test_which_addresses_need_the_operators_leave(address, refused):
    from assistant.services.judge import refused_address

    assert refused_address(address) is refused


def counting_server(status: int = 200, body: bytes = b"{}"):
    """A real HTTP server on 127.0.0.1 that counts the requests it gets and answers ``status``, ``body``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server name
            self.server.hits += 1
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.hits = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_judge_is_refused_without_a_request_unless_allowed(host):
    server = counting_server(body=json.dumps({"choices": [{"message": {"content": "Verdict: A"}}]}).encode())
    url = f"http://{host}:{server.server_address[1]}/v1"
    try:
        with pytest.raises(JudgeError, match="loopback, private or link-local") as raised:
            HttpJudge(url, "m", label="local").complete([{"role": "user", "content": "hi"}])
        assert "--allow-private-judge" in str(raised.value) and "127.0.0.1" not in str(raised.value)
        assert server.hits == 0
        assert HttpJudge(url, "m", allow_private=True).complete([{"role": "user", "content": "hi"}]) == "Verdict: A"
        assert server.hits == 1
    finally:
        server.shutdown()


def test_a_judges_error_names_the_status_and_never_the_body():
    server = counting_server(405, b"<html>SECRET internal admin page: nginx/1.2.3</html>")
    judge = HttpJudge(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", allow_private=True, label="team judge")
    try:
        with pytest.raises(JudgeError) as raised:
            judge.complete([{"role": "user", "content": "hi"}])
    finally:
        server.shutdown()
    text = str(raised.value)
    assert text.startswith("the judge team judge did not answer (HTTP 405)"), text
    assert "SECRET" not in text and "nginx" not in text and "127.0.0.1" not in text


def test_a_judge_is_not_followed_through_a_redirect():
    target = counting_server(body=json.dumps({"choices": [{"message": {"content": "Verdict: A"}}]}).encode())

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server name
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{target.server_address[1]}/v1/chat/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    redirect = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirect.serve_forever, daemon=True).start()
    try:
        with pytest.raises(JudgeError, match=r"did not answer \(HTTP 307\)"):
            HttpJudge(f"http://127.0.0.1:{redirect.server_address[1]}/v1", "m", allow_private=True).complete([])
        assert target.hits == 0
    finally:
        redirect.shutdown()
        target.shutdown()


def test_a_loaded_model_can_judge(tiny_model_path):
    from assistant.runtime.generation import ModelSettings, load_model

    judge = ModelJudge(load_model(ModelSettings(model=str(tiny_model_path), device="cpu")), max_new_tokens=8)
    verdict = judge_pair(judge, "Say hi", "hi", "hello")
    assert verdict.outcome in ("a", "b", "tie") and len(verdict.reasons) == 2


def test_an_evaluations_answers_are_graded_against_the_references(tmp_path):
    from assistant.services.evaluation import EvalCase, EvalReport, VariantResult
    from assistant.services.judge import judge_evaluation

    def grade(text: str) -> str:
        reference = text.split("Reference answer:\n")[1].split("\n\nAnswer to grade:")[0]
        answer = text.split("Answer to grade:\n")[1]
        return f"Score: {5 if answer == reference else 1}\nReason: compared"

    server = serve_replies(grade)
    judge = HttpJudge(f"http://127.0.0.1:{server.server_address[1]}/v1", "grader", allow_private=True)
    cases = [EvalCase(({"role": "user", "content": f"q{i}"},), f"r{i}") for i in range(4)]
    report = EvalReport("e1", "held.jsonl", 4, [VariantResult("base", {}, ["r0", "x", "x", "x"]),
                                                 VariantResult("tuned", {}, ["r0", "r1", "r2", "x"])])
    graded = judge_evaluation(judge, report, cases, folder=tmp_path)
    server.shutdown()
    assert [r.metrics["judge_score"] for r in report.results] == [2.0, 4.0]  # (5+1+1+1)/4, (5+5+5+1)/4
    saved = json.loads((tmp_path / "judge.json").read_text())
    assert saved == graded and saved["variants"]["tuned"]["cases"][3] == {"score": 1, "reason": "compared"}
