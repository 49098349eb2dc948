"""The Compare tab: variants side by side, blind A/B votes, the leaderboard, and evaluations.

Wiring only: assistant.variants answers, assistant.arena keeps votes and scores,
assistant.evaluation runs held-out sets. Chat histories live in per-session gr.State, so no
user ever sees another's conversation; the model lock queues generations on the one device.
"""

from __future__ import annotations

import random
from pathlib import Path

import gradio as gr

from assistant.arena import Vote, VoteStore, draw_pair, leaderboard
from assistant.evaluation import cases_from_file, gap_check, record_outcome, run_evaluation, save_report
from assistant.runtime import GenerationSettings, ModelUnavailableError
from assistant.tenants import Tenant, Tenants
from assistant.variants import ProjectVariants, Variant
from assistant.workspace import Workspace

MAX_COLUMNS = 4
GENERATION = GenerationSettings(max_new_tokens=256, seed=0)


def sources_text(sources) -> str:
    return "\n".join(f"[{s.number}] {s.source}" + (f", page {s.page}" if s.page else "") for s in sources)


def build_compare_tab(tenants: Tenants, project: gr.Dropdown) -> None:
    def resolve(variants: ProjectVariants, name: str, variant_name: str) -> Variant:
        try:
            return variants.resolve(name, variant_name)
        except ValueError as error:
            raise gr.Error(str(error)) from error
    with gr.Tab("Side by side"):
        with gr.Row():
            chosen = gr.Dropdown([], multiselect=True, allow_custom_value=True, label="Variants (2 to 4)",
                                 elem_id="cmp-variants")
            load = gr.Button("Load variants", scale=0)
        histories = gr.State([[] for _ in range(MAX_COLUMNS)])
        with gr.Row():
            columns = [gr.Chatbot(label=f"Variant {i + 1}", height=380, visible=i < 2, elem_id=f"cmp-col-{i}")
                       for i in range(MAX_COLUMNS)]
        stats = gr.Markdown()
        prompt = gr.Textbox(placeholder="One prompt, sent to every chosen variant", show_label=False,
                            elem_id="cmp-prompt")
    with gr.Tab("Blind A/B"):
        pair = gr.State([])
        gr.Markdown("Two variants are drawn at random and their names hidden; vote, then see who was who.")
        with gr.Row():
            blind_prompt = gr.Textbox(placeholder="Prompt for the blind round", show_label=False, elem_id="ab-prompt")
        with gr.Row():
            answer_a = gr.Textbox(label="A", lines=8, interactive=False, elem_id="ab-a")
            answer_b = gr.Textbox(label="B", lines=8, interactive=False, elem_id="ab-b")
        with gr.Row():
            votes = {key: gr.Button(label, elem_id=f"ab-vote-{key}") for key, label in
                     (("a", "A is better"), ("b", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad"))}
        reveal = gr.Markdown(elem_id="ab-reveal")
        board = gr.Dataframe(headers=["variant", "score", "95% low", "95% high", "wins", "losses", "ties",
                                      "games", "win rate"], label="Leaderboard", interactive=False,
                             elem_id="ab-board")
        export = gr.DownloadButton("Export votes (CSV)")
    with gr.Tab("Evaluation"):
        eval_file = gr.File(label="Held-out examples (any supported format)", type="filepath", elem_id="ev-file")
        with gr.Row():
            eval_limit = gr.Number(value=50, precision=0, label="Examples (at most)")
            eval_variants = gr.CheckboxGroup([], label="Variants")
            run = gr.Button("Run evaluation", variant="primary", elem_id="ev-run")
            gap = gr.Button("Gap check (base only, before training)", elem_id="ev-gap")
        eval_table = gr.Dataframe(label="Results", interactive=False, elem_id="ev-table")
        eval_chart = gr.BarPlot(x="variant", y="value", color="metric", label="Scores", height=280)
        eval_note = gr.Markdown(elem_id="ev-note")

    def store_for(workspace: Workspace, name: str) -> VoteStore:
        return VoteStore(workspace.project(name).path / "tunewise.sqlite")

    def board_rows(workspace: Workspace, name: str) -> list[list]:
        store = store_for(workspace, name)
        try:
            return [[s.variant, round(s.score), round(s.low), round(s.high), s.wins, s.losses, s.ties, s.games,
                     round(s.win_rate, 3)] for s in leaderboard(store.votes())]
        finally:
            store.close()

    def on_load(name: str, request: gr.Request):
        tenant = tenants.for_request(request)
        try:
            names = tenant.variants.names(name)
        except ModelUnavailableError as error:
            raise gr.Error(f"The model is not available: {error}") from error
        return (gr.Dropdown(choices=names, value=names[:2]), gr.CheckboxGroup(choices=names, value=names[:2]),
                board_rows(tenant.workspace, name))

    def on_choose(selection: list[str]):
        return [gr.Chatbot(visible=i < max(2, len(selection)), label=(selection[i] if i < len(selection) else ""))
                for i in range(MAX_COLUMNS)]

    def on_prompt(text: str, selection: list[str], state: list, name: str, request: gr.Request):
        variants = tenants.for_request(request).variants
        if not 2 <= len(selection or []) <= MAX_COLUMNS:
            raise gr.Error("Choose 2 to 4 variants.")
        available = variants.names(name)
        unknown = [v for v in selection if v not in available]
        if unknown:
            raise gr.Error(f"Unknown variants {unknown}; available: {available}")
        if not text.strip():
            raise gr.Error("Type a prompt first.")
        state = [list(h) for h in state]
        model_variants = variants.for_project(name)
        notes = []
        for i, variant_name in enumerate(selection):
            history = state[i] + [{"role": "user", "content": text}]
            messages = [{"role": m["role"], "content": m["content"]} for m in history]
            search = variants.search(name)
            for answer in model_variants.stream(resolve(variants, name, variant_name), messages, GENERATION, search):
                content = answer.text + (f"\n\nSources:\n{sources_text(answer.sources)}" if answer.sources else "")
                state[i] = history + [{"role": "assistant", "content": content}]
                yield [*state[:MAX_COLUMNS]], "", *(state[j] for j in range(MAX_COLUMNS)), "\n".join(notes)
            if answer.done:
                notes.append(f"**{variant_name}**: first token {answer.first_token_s or 0:.2f} s, "
                             f"{answer.tokens_per_s or 0:.1f} tokens/s")
        yield [*state[:MAX_COLUMNS]], "", *(state[j] for j in range(MAX_COLUMNS)), "\n\n".join(notes)

    def on_blind(text: str, name: str, request: gr.Request):
        variants = tenants.for_request(request).variants
        names = variants.names(name)
        if len(names) < 2:
            raise gr.Error("Blind voting needs at least two variants: train an adapter or add documents.")
        first, second = draw_pair(names, random.Random())
        model_variants = variants.for_project(name)
        messages = [{"role": "user", "content": text}]
        answers = {}
        for side, variant_name in (("a", first), ("b", second)):
            answers[side] = list(model_variants.stream(resolve(variants, name, variant_name), messages, GENERATION,
                                                       variants.search(name)))[-1].text
        return [first, second, text, answers["a"], answers["b"]], answers["a"], answers["b"], "Vote to see the names."

    def make_vote(outcome: str):
        def on_vote(current: list, name: str, request: gr.Request):
            if not current:
                raise gr.Error("Start a blind round first: type a prompt.")
            first, second, text, a_text, b_text = current
            workspace = tenants.for_request(request).workspace
            store = store_for(workspace, name)
            try:
                store.add(Vote(first, second, outcome, text, a_text, b_text,
                               getattr(request, "session_hash", "") or ""))
            finally:
                store.close()
            return [], f"A was **{first}**, B was **{second}**.", board_rows(workspace, name)
        return on_vote

    def on_export(name: str, request: gr.Request) -> str:
        workspace = tenants.for_request(request).workspace
        store = store_for(workspace, name)
        try:
            path = workspace.project(name).path / "votes.csv"
            path.write_text(store.to_csv(), encoding="utf-8")
        finally:
            store.close()
        return str(path)

    def on_run(file, limit, selection, name, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        import pandas as pd

        tenant = tenants.for_request(request)
        variants, workspace = tenant.variants, tenant.workspace
        if not file or not selection:
            raise gr.Error("Upload held-out examples and choose variants.")
        try:
            cases = cases_from_file(file, int(limit) if limit else None)
        except (OSError, ValueError) as error:
            raise gr.Error(str(error)) from error
        report = run_evaluation(variants.for_project(name), [resolve(variants, name, v) for v in selection], cases,
                                Path(file).name, GENERATION, variants.search(name),
                                lambda f, label: progress(f, desc=label))
        folder = save_report(report, workspace.project(name).path / "evals")
        held = record_outcome(workspace, name, report)
        keys = ["exact_match", "contains_reference", "json_valid", "field_accuracy", "citation_rate",
                "latency_p50_s"]
        table = pd.DataFrame([{"variant": r.variant, **{k: r.metrics.get(k) for k in keys}} for r in report.results])
        chart = pd.DataFrame([{"variant": r.variant, "metric": k, "value": float(r.metrics[k])}
                              for r in report.results for k in keys[:4]])
        return table, chart, (f"Saved `{folder / 'report.json'}` and `{folder / 'report.md'}`.\n\n**Did the plan "
                              "hold?** " + " ".join(held))

    def on_gap(file, limit, name, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        tenant: Tenant = tenants.for_request(request)
        variants = tenant.variants
        if not file:
            raise gr.Error("Upload held-out examples first.")
        try:
            cases = cases_from_file(file, int(limit) if limit else 20)
        except (OSError, ValueError) as error:
            raise gr.Error(str(error)) from error
        search = variants.search(name) if tenant.knowledge.get(name).documents() else None
        finding, decision = gap_check(tenant.advisor, name, variants.for_project(name), cases, Path(file).name, search,
                                      GENERATION, lambda f, label: progress(f, desc=label))
        note = f"**Gap check ({len(cases)} examples):** {finding.text}"
        if decision:
            note += f"\n\nThe plan now uses the measured gap **{finding.gap}**: {decision}."
        return note

    private = {"api_visibility": "private"}
    load.click(on_load, [project], [chosen, eval_variants, board], **private)
    chosen.change(on_choose, [chosen], columns, **private)
    prompt.submit(on_prompt, [prompt, chosen, histories, project], [histories, prompt, *columns, stats],
                  api_name="compare")
    blind_prompt.submit(on_blind, [blind_prompt, project], [pair, answer_a, answer_b, reveal], **private)
    for outcome, button in votes.items():
        button.click(make_vote(outcome), [pair, project], [pair, reveal, board], **private)
    export.click(on_export, [project], export, **private)
    run.click(on_run, [eval_file, eval_limit, eval_variants, project], [eval_table, eval_chart, eval_note],
              **private)
    gap.click(on_gap, [eval_file, eval_limit, project], [eval_note], **private)
