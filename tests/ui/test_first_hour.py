"""The README's "first hour", click by click in a real browser, on the bundled model.

A newcomer's walk through the served app (Debian's Chromium through Playwright, the app on
127.0.0.1 over a fresh workspace): the interview; Knowledge's example documents and the README's
question answered with its number and a citation; Behaviour's example data, an estimate within 2x
of the memory the job then measures, and one short training with its loss line drawn; Compare's
side by side, where the new adapter answers a plain request in the trained format under a header
naming its training system prompt, and "base + few-shot" is offered; an evaluation on the held-out
split without a file; and the plan card showing its outcome without a reload. Screenshots of each
step go to test-artifacts/browser/first-hour-NN-*.png, the time of each step to
first-hour-timings.json beside them.

    .venv/bin/python -m pytest tests/ui/test_first_hour.py -m slow -s

About 14 minutes on a busy 2-core machine (load 5): training 4.5 min, the 40-case evaluation 8 min.
"""

import json
import re
import time

import pytest

from assistant.example_data import EXAMPLE_QUESTIONS
from tests.ui.serving import launched
from tests.ui.test_browser import ARTIFACTS, CHROMIUM, LOSS_LINES, answer_interview, open_browser, path_points

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM),
                                 reason="Debian's chromium is not installed (.ci/run installs it with apt)")]

README_QUESTION = "How many people can no longer be denied health insurance because of a preexisting condition?"
"""The question of the README's first hour (and of ``tunewise chat --retrieval`` beside it)."""
ADAPTER = "snips-first-hour"
MAX_STEPS = 10
"""About the least training that teaches the bundled model the format (measured at 2e-3, batch 8, on 8
held-out Snips requests and this test's request: 5 of 9 answers valid JSON after 4 steps, 9 of 9 after
8); 10 also logs a loss at steps 1, 5 and 10, so the loss chart has a line to draw."""
LEARNING_RATE = "0.002"
"""Ten times the plan's 2e-4, which needs epochs to move the answers; 2e-3 moves them in a few steps."""
REQUEST = "Book a table for two at a sushi place tonight"
"""A plain Snips-style request, as a user types it: no system prompt, not in the training examples."""
MEMORY = re.compile(r"memory ([\d.]+) GB")
JOB_MEMORY = re.compile(r"memory: estimated ([\d.]+) GB, measured peak ([\d.]+) GB")


def first_json_object(text: str) -> dict | None:
    """The first JSON object in ``text`` (a chat column's text holds the header and the messages too)."""
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            found, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(found, dict):
            return found
    return None


@pytest.fixture
def bundled_app_url(tmp_path, monkeypatch):
    """The app as `tunewise serve` builds it, on the bundled model (the default), over a fresh workspace,
    on a free 127.0.0.1 port and closed after the test."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from assistant.runtime.generation import ModelSettings
    from ui.app import build_app

    app = build_app(tmp_path / "ws", model=ModelSettings(device="cpu"))
    with launched(app) as url:
        assert url.startswith("http://127.0.0.1:"), url
        yield url


@pytest.mark.timeout(3600)  # 14 min on a busy 2-core machine: real training and evaluation on the CPU
def test_the_readme_first_hour_on_the_bundled_model(bundled_app_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert EXAMPLE_QUESTIONS[0] == README_QUESTION
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("first-hour-*"):
        old.unlink()
    timings: dict[str, float] = {}
    started = time.perf_counter()

    with sync_playwright() as p:
        browser = open_browser(p, tmp_path / "chromium")
        page = browser.new_page()
        page.set_default_timeout(60_000)
        step = iter(range(1, 100))
        clock = [time.perf_counter()]

        def shot(name: str) -> None:
            page.screenshot(path=str(ARTIFACTS / f"first-hour-{next(step):02d}-{name}.png"), full_page=True)
            now = time.perf_counter()
            timings[name] = round(now - clock[0], 1)
            clock[0] = now
            (ARTIFACTS / "first-hour-timings.json").write_text(json.dumps(timings, indent=2))

        page.goto(bundled_app_url)

        # README 2. Interview: say what the task is; the plan comes with its reasons.
        answer_interview(page)
        expect(page.locator("#plan-card")).to_contain_text("Rule")
        shot("interview-plan")

        # README 3. Knowledge > "Try it with example data" indexes the speech and puts a question in the Ask box;
        # "Ask" answers it with the speech's figure, citing the passage as [n].
        page.get_by_role("tab", name="Knowledge").click()
        expect(page.locator("#kb-example")).to_have_text("Try it with example data")
        page.locator("#kb-example").click()
        expect(page.locator("#kb-results")).to_contain_text("added", timeout=300_000)
        expect(page.locator("#kb-documents")).to_contain_text("state_of_the_union_2024.md")
        expect(page.locator("#kb-ask textarea")).to_have_value(README_QUESTION)
        page.get_by_role("button", name="Ask", exact=True).click()
        expect(page.locator("#kb-sources")).to_contain_text("[1] state_of_the_union_2024.md", timeout=300_000)
        # The answer streams: wait until it holds both the number and a citation, or give up with what it said.
        answer = page.locator("#kb-answer textarea")
        try:
            expect(answer).to_have_value(re.compile(r"(?=[\s\S]*100 million)(?=[\s\S]*\[\d+\])"), timeout=300_000)
        finally:
            shot("knowledge-ask")
        text = answer.input_value()
        assert "100 million" in text and re.search(r"\[\d+\]", text), text

        # README 4. Behaviour > "Try it with example data": 299 Snips requests -> JSON and 40 held out, the
        # validation report and the estimate; "Start training" runs LoRA on the CPU with live loss.
        page.get_by_role("tab", name="Behaviour").click()
        expect(page.locator("#bh-reasons")).to_contain_text("alpha = 2 x r")  # the plan's settings are in
        expect(page.locator("#bh-example")).to_have_text("Try it with example data")
        page.locator("#bh-example").click()
        report = page.locator("#bh-report")
        expect(report).to_contain_text("Valid: 299 of 299", timeout=300_000)
        expect(report).to_contain_text(re.compile(r"Split: \d+ train, 40 eval"))
        estimate = page.locator("#bh-estimate")
        expect(estimate).to_contain_text("Estimate (cpu, lora)")
        # One short training: the estimate follows each edit of the form.
        page.get_by_label("Max steps (-1: all epochs)").fill(str(MAX_STEPS))
        expect(estimate).to_contain_text(f"{MAX_STEPS} steps")
        page.get_by_label("Learning rate").fill(LEARNING_RATE)
        page.wait_for_timeout(3000)  # the estimate's refresh after the last edit
        shown = MEMORY.search(estimate.inner_text())
        assert shown, estimate.inner_text()
        estimated_gb = float(shown.group(1))
        shot("behaviour-report-estimate")
        page.locator("#bh-adapter-name textarea").fill(ADAPTER)
        expect(page.locator("#bh-start")).to_have_text("Start training")
        page.locator("#bh-start").click()
        job = page.locator("#bh-job")
        expect(job).to_contain_text("running", timeout=120_000)
        expect(page.locator("#bh-adapters")).to_contain_text(ADAPTER, timeout=1_800_000)
        expect(job).to_contain_text("completed")
        expect(job).to_contain_text(JOB_MEMORY)
        memory = JOB_MEMORY.search(job.inner_text())
        job_estimate_gb, measured_gb = float(memory.group(1)), float(memory.group(2))
        # The loss chart draws the train loss as a stroked line through its logged points.
        expect(page.locator("#bh-loss svg .role-legend-label")).to_have_count(2)
        lines = page.evaluate(LOSS_LINES)
        page.locator("#bh-loss").screenshot(path=str(ARTIFACTS / "first-hour-loss-chart.png"))
        shot("behaviour-trained")
        assert job_estimate_gb == pytest.approx(estimated_gb, abs=0.05), (job_estimate_gb, estimated_gb)
        assert measured_gb / 2 <= estimated_gb <= measured_gb * 2, \
            f"the estimate {estimated_gb} GB is not within 2x of the measured peak {measured_gb} GB"
        drawn = [line for line in lines if line["stroke"] and path_points(line["d"]) >= 3]
        assert drawn, f"no loss line is drawn: {lines}"

        # README 5. Compare > Side by side: the base against the new adapter, which answers a plain request in
        # the trained format: its column says the system prompt it was trained with, and answers with it.
        page.get_by_role("tab", name="Compare").click()
        page.get_by_role("tab", name="Side by side").click()
        variants = page.locator("#cmp-variants")
        expect(variants).to_contain_text(ADAPTER, timeout=300_000)  # loaded on opening, the new adapter chosen
        adapter_column = page.locator("#cmp-col-1")
        expect(adapter_column).to_contain_text(ADAPTER)
        expect(adapter_column).to_contain_text("system:")
        expect(adapter_column).to_contain_text("Return the intent and slots")
        page.locator("#cmp-variants input").click()
        offered = page.get_by_role("option")
        expect(offered.first).to_be_visible()
        names = [text.strip().split("\n")[-1] for text in offered.all_inner_texts()]
        page.keyboard.press("Escape")
        assert "base + few-shot" in names, names
        assert "base + retrieval" in names, names
        page.locator("#cmp-prompt textarea").fill(REQUEST)
        page.locator("#cmp-prompt textarea").press("Enter")
        expect(page.get_by_text(re.compile(f"{re.escape(ADAPTER)}.*first token"))).to_be_visible(timeout=600_000)
        shot("compare-side-by-side")
        column_text = adapter_column.inner_text()
        trained = first_json_object(column_text.split(REQUEST, 1)[-1])
        assert trained is not None and "intent" in trained, f"the adapter did not answer in JSON: {column_text!r}"

        # Compare > Evaluation with no file: the held-out split the Behaviour tab made, scored, and whether the
        # plan held.
        page.get_by_role("tab", name="Evaluation").click()
        expect(page.get_by_label(ADAPTER, exact=True)).to_be_checked()
        expect(page.get_by_label("base", exact=True)).to_be_checked()
        page.locator("#ev-run").click()
        note = page.locator("#ev-note")
        expect(note).to_contain_text("report.json", timeout=1_800_000)
        shot("compare-evaluation")
        expect(note).to_contain_text("held-out split of")
        expect(note).to_contain_text("Did the plan hold?")

        # The plan card shows the evaluation's outcome without a reload.
        page.get_by_role("tab", name="Interview").click()
        expect(page.locator("#plan-card")).to_contain_text("Did the plan hold?", timeout=15_000)
        expect(page.locator("#plan-card")).to_contain_text("Strongest evidence")
        shot("plan-card-outcome")
        browser.close()
    timings["total"] = round(time.perf_counter() - started, 1)
    (ARTIFACTS / "first-hour-timings.json").write_text(json.dumps(timings, indent=2))
    print(f"first hour: {timings}")
