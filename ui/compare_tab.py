"""The Compare tab: variants side by side, blind A/B votes, the leaderboard, and evaluations.

Wiring only: assistant.runtime.variants answers, assistant.services.arena keeps votes and scores,
assistant.services.evaluation runs held-out sets and keeps the time per answer behind the estimate.
Chat histories live in per-session gr.State, so no user ever sees another's conversation; the model
lock queues generations on the one device.
"""

from __future__ import annotations

import html
import random
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr

from assistant.core.outcomes import share_with_interval
from assistant.runtime.generation import GenerationSettings, ModelUnavailableError
from assistant.runtime.variants import Variant
from assistant.services.arena import (
    MIN_GAMES_FOR_INTERVAL,
    Standing,
    Vote,
    blind_pool,
    draw_pair,
    export_votes_csv,
    project_leaderboard,
    record_vote,
)
from assistant.services.evaluation import (
    SHARE_METRICS,
    AnswerTime,
    AnswerTimes,
    EvaluationEstimate,
    HeldOutCases,
    cases_from_upload,
    evaluate_project,
    gap_check,
    generation_for,
    project_held_out,
)
from assistant.services.judge import HttpJudge, ModelJudge, check_project_judge, saved_agreement, vote_label
from assistant.services.operator import LOADED_MODEL_JUDGE
from assistant.services.project_variants import ProjectVariants
from assistant.services.tenants import Tenant, Tenants
from assistant.services.workspace import Workspace
from tunewise.errors import TunewiseError
from ui.uploads import uploaded_file

MAX_COLUMNS = 4
GENERATION = GenerationSettings(max_new_tokens=256, seed=0)
"""Side by side and blind rounds; an evaluation caps answers lower still, from its references."""
METRICS = [*SHARE_METRICS, "latency_p50_s"]
EVAL_COLUMNS = ["variant", *METRICS]
GENERAL_METRICS = ["general_loss", "general_accuracy"]


def general_ability_text(results) -> str:
    """"General ability: base -> adapter" for each adapter, when the forgetting probe ran."""
    base = next((r.metrics for r in results if r.variant == "base" and r.metrics.get("general_loss") is not None),
                None)
    lines = []
    for result in results:
        m = result.metrics
        if base is None or m.get("general_loss") is None or result.variant.startswith("base"):
            continue
        lines.append(f"**General ability, base -> {result.variant}:** loss on general text {base['general_loss']:.3f} "
                     f"-> {m['general_loss']:.3f} (lower is better); general questions "
                     f"{share_with_interval(base['general_accuracy'], base['general_n'])} -> "
                     f"{share_with_interval(m['general_accuracy'], m['general_n'])}.")
    return ("\n\n" + "\n\n".join(lines)) if lines else ""


BOARD_COLUMNS = ["variant", "score", "95% interval", "wins", "losses", "ties", "games", "win rate"]


def interval_text(standing: Standing) -> str:
    """The 95% interval as the leaderboard shows it, or "needs more votes" while it says nothing
    (fewer than MIN_GAMES_FOR_INTERVAL games, or every resample on one score)."""
    if not standing.interval_known:
        return f"needs more votes ({standing.games} of {MIN_GAMES_FOR_INTERVAL})"
    return f"{round(standing.low)} to {round(standing.high)}"


def column_text(answer) -> str:
    """An answer as its column shows it: the text, then its sources, then the few-shot examples it was
    shown (by their number in the examples file)."""
    shown = (f"\n\n<sub>few-shot examples shown: {', '.join(f'#{n}' for n in answer.shots)}</sub>"
             if answer.shots else "")
    return answer.text + (f"\n\nSources:\n{sources_text(answer.sources)}" if answer.sources else "") + shown


def column_label(variant: Variant) -> str:
    """A column's header: the variant, and the system prompt it answers with when it brings one (an
    adapter's training instruction), so what the column was told is on the screen."""
    if not variant.system_prompt:
        return variant.name
    prompt = " ".join(variant.system_prompt.split())
    return f"{variant.name} · system: “{prompt[:60]}{'…' if len(prompt) > 60 else ''}”"


def judge_markdown(result) -> str:
    """The judge's agreement, and the pairs where it disagreed with the vote."""
    lines = [f"**Judge:** {html.escape(result.summary())}"]
    disagreed = [i for i in result.items if vote_label(i["vote"]) != i["judge"]][:5]
    for item in disagreed:
        lines.append(f"- *{html.escape(item['prompt'][:80])}*: you voted **{item['vote']}**, the judge said "
                     f"**{item['judge']}** ({html.escape(item['reasons'][0][:160])})")
    return "\n".join(lines)


def sources_text(sources) -> str:
    return "\n".join(f"[{s.number}] {s.source}" + (f", page {s.page}" if s.page else "") for s in sources)


def preselect(names: list[str], adapters_newest_first: list[str], current: list[str] | None,
              known: list[str] | None) -> list[str]:
    """Which variants to show side by side: the base against an adapter that appeared since the list
    was last loaded (just trained), else the person's own choice while it still exists, else the
    base against the newest adapter, else the first two."""
    fresh = [a for a in adapters_newest_first if a in names and a not in (known or [])]
    if fresh and "base" in names:
        return ["base", fresh[0]]
    kept = [n for n in current or [] if n in names]
    if len(kept) >= 2:
        return kept
    newest = next((a for a in adapters_newest_first if a in names), None)
    return ["base", newest] if newest and "base" in names else names[:2]


def informative_pair(names: list[str], rng: random.Random) -> tuple[str, str]:
    """Two variants for a blind round, drawn among pairs with different cores (base or adapter) when
    there are any: an adapter against itself with retrieval often gives the very same text (when
    retrieval finds nothing relevant, the prompt is the same), which teaches the vote nothing."""
    def core(name: str) -> str | None:
        return Variant.parse(name).adapter

    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if core(a) != core(b)]
    if not pairs:
        return draw_pair(names, rng)
    first, second = rng.choice(pairs)
    return (first, second) if rng.random() < 0.5 else (second, first)


def duration_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def basis_text(per_answer: AnswerTime) -> str:
    """How the time per answer was measured, in the words the estimate shows."""
    if per_answer.basis == AnswerTimes.ONE_ANSWER:
        return f"one answer alone took {duration_text(per_answer.seconds)}; answers in batches usually go faster"
    return f"{duration_text(per_answer.seconds)} per answer in the last evaluation on this model"


def estimate_text(estimate: EvaluationEstimate) -> str:
    """"about N cases x M variants = K answers ≈ T", T from a measured time per answer."""
    text = (f"**Estimate:** about {estimate.cases} cases x {estimate.variants} variants = {estimate.answers} "
            "answers")
    if estimate.per_answer is None or estimate.seconds is None:
        return text + "; the time per answer is measured on one answer when the run starts."
    return text + f" ≈ {duration_text(estimate.seconds)} (rough: {basis_text(estimate.per_answer)})."


def eval_generation(cases, tokenizer) -> GenerationSettings:
    """The CLI's answer cap from the references' lengths (generation_for), never above GENERATION's."""
    capped = generation_for(cases, tokenizer)
    return replace(GENERATION, max_new_tokens=min(capped.max_new_tokens, GENERATION.max_new_tokens))


def newest_first(adapters) -> list[str]:
    """Adapter names, the most recently trained first (by when their weights were written)."""
    def written(adapter) -> float:
        try:
            return (Path(adapter.path) / "adapter_config.json").stat().st_mtime
        except OSError:
            return 0.0
    return [a.name for a in sorted(adapters, key=written, reverse=True)]


def build_compare_tab(tenants: Tenants, project: gr.Dropdown, answer_times: AnswerTimes | None = None) -> dict:
    """The sub-tabs; returns ``on_load`` with its ``inputs`` and ``outputs``, to load the variants
    when the tab opens, the project changes or the model is switched.

    ``answer_times`` keeps the time per evaluation answer on the app's one model (a new one when not
    given); every session's estimate reads it."""
    answer_times = AnswerTimes() if answer_times is None else answer_times

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
        known = gr.State([])  # the names of the last load: a name not among them is an adapter trained since
        unavailable = gr.Markdown(elem_id="cmp-unavailable")
        histories = gr.State([[] for _ in range(MAX_COLUMNS)])
        with gr.Row():
            columns = [gr.Chatbot(label=f"Variant {i + 1}", height=380, visible=i < 2, elem_id=f"cmp-col-{i}")
                       for i in range(MAX_COLUMNS)]
        stats = gr.Markdown()
        prompt = gr.Textbox(placeholder="One prompt, sent to every chosen variant", show_label=False,
                            elem_id="cmp-prompt")
    with gr.Tab("Blind A/B"):
        pair = gr.State([])
        gr.Markdown("Two of the variants chosen under Side by side are drawn at random (different bases or adapters "
                    "when there are any) and their names hidden; vote, then see who was who. Two identical answers "
                    "count as a tie by themselves.")
        with gr.Row():
            blind_prompt = gr.Textbox(placeholder="Prompt for the blind round", show_label=False, elem_id="ab-prompt")
        with gr.Row():
            answer_a = gr.Textbox(label="A", lines=8, interactive=False, elem_id="ab-a")
            answer_b = gr.Textbox(label="B", lines=8, interactive=False, elem_id="ab-b")
        with gr.Row():
            votes = {key: gr.Button(label, elem_id=f"ab-vote-{key}") for key, label in
                     (("a", "A is better"), ("b", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad"))}
        reveal = gr.Markdown(elem_id="ab-reveal")
        board = gr.Dataframe(headers=BOARD_COLUMNS, label="Leaderboard", interactive=False, elem_id="ab-board")
        export = gr.DownloadButton("Export votes (CSV)")
        with gr.Accordion("An LLM judge, checked against your votes", open=False):
            gr.Markdown("The judge compares each pair you voted on, in both orders (a verdict that flips when "
                        "the answers swap counts as a tie), and its agreement with your votes says how far "
                        "to trust it on pairs you have not voted on. The judges besides the loaded model are "
                        "the ones the operator offers (tunewise serve --judge-url).")
            with gr.Row():
                # A choice among the operator's endpoints, looked up by label on the server: a URL from the
                # page would let anyone make the server call any address.
                judge_choice = gr.Dropdown(tenants.policy.judge_labels(), value=LOADED_MODEL_JUDGE, label="Judge",
                                           elem_id="ab-judge-choice")
                judge_run = gr.Button("Check the judge against my votes", elem_id="ab-judge")
            judge_md = gr.Markdown(elem_id="ab-judge-result")
    with gr.Tab("Evaluation"):
        eval_file = gr.File(label="Held-out examples (any supported format; none: the held-out split the Behaviour "
                            "tab prepared last)", type="filepath", elem_id="ev-file")
        with gr.Row():
            eval_limit = gr.Number(value=50, precision=0, label="Examples (at most)")
            eval_variants = gr.CheckboxGroup([], label="Variants")
            general_box = gr.Checkbox(False, label="General ability",
                                      info="also score each model on general text and questions: what training cost it",
                                      elem_id="ev-general")
            run = gr.Button("Run evaluation", variant="primary", elem_id="ev-run")
            gap = gr.Button("Gap check (base only, before training)", elem_id="ev-gap")
        eval_table = gr.Dataframe(headers=EVAL_COLUMNS, label="Results", interactive=False, elem_id="ev-table")
        eval_chart = gr.BarPlot(x="bar", y="score", color="variant", label="Scores", y_lim=[0, 1],
                                x_title="metric · variant", color_title="variant", x_label_angle=-35,
                                elem_id="ev-chart")
        eval_note = gr.Markdown(elem_id="ev-note")

    def board_rows(workspace: Workspace, name: str) -> list[list]:
        return [[s.variant, round(s.score), interval_text(s), s.wins, s.losses, s.ties, s.games,
                 round(s.win_rate, 3)] for s in project_leaderboard(workspace, name)]

    def on_load(name: str, selection: list[str] | None, checked: list[str] | None, seen: list[str] | None,
                request: gr.Request):
        tenant = tenants.for_request(request)
        board = board_rows(tenant.workspace, name)
        try:
            names = tenant.variants.names(name)
        except ModelUnavailableError as error:
            note = f"**The model is not available:** {html.escape(str(error))}"
            return (gr.Dropdown(choices=[], value=[], multiselect=True), gr.CheckboxGroup(choices=[], value=[]), board,
                    note, [])
        adapters = newest_first([a for a in tenant.behaviour(name).adapters.list() if a.name in names])
        missing = tenant.variants.unavailable(name)
        note = ("**Not available on the loaded model:** " + "; ".join(
            f"**{html.escape(adapter)}** ({html.escape(reason)})" for adapter, reason in missing)
            + ". Pick its base in the model picker above to use it.") if missing else ""
        return (gr.Dropdown(choices=names, value=preselect(names, adapters, selection, seen), multiselect=True),
                gr.CheckboxGroup(choices=names, value=preselect(names, adapters, checked, seen)), board, note, names)

    def on_choose(selection: list[str], name: str, request: gr.Request):
        variants = tenants.for_request(request).variants
        labels = []
        for chosen_name in selection or []:
            try:
                labels.append(column_label(variants.resolve(name, chosen_name)))
            except (TunewiseError, ValueError):
                labels.append(chosen_name)  # a stale choice: on_prompt says what is wrong with it
        return [gr.Chatbot(visible=i < max(2, len(labels)), label=(labels[i] if i < len(labels) else ""))
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
        aids = variants.aids(name)
        asked = [state[i] + [{"role": "user", "content": text}] for i in range(len(selection))]
        chosen = [resolve(variants, name, v) for v in selection]
        conversations = [[dict(m) for m in asked[i]] for i in range(len(selection))]
        yield [*state], "", *(asked + state[len(asked):])[:MAX_COLUMNS], ""
        # The variants answer together: one batch on the one model, a different adapter per row.
        answers = []
        for answers in model_variants.stream_together(chosen, conversations, GENERATION, aids):
            columns = [asked[i] + [{"role": "assistant", "content": column_text(a)}] for i, a in enumerate(answers)]
            yield [*state], "", *(columns + state[len(columns):])[:MAX_COLUMNS], ""
        for i, answer in enumerate(answers):
            state[i] = asked[i] + [{"role": "assistant", "content": column_text(answer)}]
        notes = [f"**{a.variant}**: first token {a.first_token_s or 0:.2f} s"
                 + (f", {a.tokens_per_s:.1f} tokens/s" if a.tokens_per_s else "")
                 + (f", {a.latency_s:.1f} s in all" if a.latency_s else "") for a in answers]
        yield [*state], "", *state[:MAX_COLUMNS], "\n\n".join(notes)

    def on_blind(text: str, selection: list[str] | None, name: str, request: gr.Request):
        tenant = tenants.for_request(request)
        variants = tenant.variants
        if not text.strip():
            raise gr.Error("Type a prompt first.")
        names = variants.names(name)
        if len(names) < 2:
            raise gr.Error("Blind voting needs at least two variants: train an adapter or add documents.")
        pool = blind_pool(selection, names)  # only what the person chose; a refusal reaches the page as it is
        first, second = informative_pair(pool, random.Random())
        model_variants = variants.for_project(name)
        messages = [{"role": "user", "content": text}]
        pair = [resolve(variants, name, first), resolve(variants, name, second)]
        final = list(model_variants.stream_together(pair, [messages, messages], GENERATION, variants.aids(name)))[-1]
        answers = {"a": final[0].text, "b": final[1].text}
        if answers["a"].strip() == answers["b"].strip():
            # Nothing to choose between: asking would only invite a coin toss, so it is a tie.
            record_vote(tenant.workspace, name, Vote(first, second, "tie", text, answers["a"], answers["b"],
                                                getattr(request, "session_hash", "") or ""))
            return ([], answers["a"], answers["b"], f"Both gave the same answer, so this round counts as a **tie** "
                    f"without a vote. A was **{first}**, B was **{second}**.", board_rows(tenant.workspace, name))
        return ([first, second, text, answers["a"], answers["b"]], answers["a"], answers["b"],
                "Vote to see the names.", gr.skip())

    def make_vote(outcome: str):
        def on_vote(current: list, name: str, request: gr.Request):
            if not current:
                raise gr.Error("Start a blind round first: type a prompt.")
            first, second, text, a_text, b_text = current
            workspace = tenants.for_request(request).workspace
            record_vote(workspace, name, Vote(first, second, outcome, text, a_text, b_text,
                                              getattr(request, "session_hash", "") or ""))
            return [], f"A was **{first}**, B was **{second}**.", board_rows(workspace, name)
        return on_vote

    def on_export(name: str, request: gr.Request) -> str:
        return str(export_votes_csv(tenants.for_request(request).workspace, name))

    def held_out(file, limit, name: str, request: gr.Request, default: int | None = None) -> HeldOutCases:
        """The uploaded file's cases, else the project's latest prepared held-out split's."""
        limit = int(limit) if limit else default
        try:
            if file:
                return cases_from_upload(uploaded_file(file, "examples file"), limit)
            return project_held_out(tenants.for_request(request).behaviour(name), limit)
        except TunewiseError:  # a refused upload, no split yet: the page shows its own sentence
            raise
        except (OSError, ValueError) as error:
            raise gr.Error(str(error)) from error

    def on_estimate(file, limit, selection, name: str, request: gr.Request) -> str:
        if not selection:
            return ""
        try:
            data = held_out(file, limit, name, request)
        except TunewiseError as error:
            return f"**Cannot read the examples:** {html.escape(error.user_text(), quote=False)}"
        except gr.Error as error:
            return f"**Cannot read the examples:** {html.escape(error.message, quote=False)}"
        return (f"**Data:** {html.escape(data.description, quote=False)}.\n\n"
                + estimate_text(answer_times.estimate(tenants.model.name, len(data.cases), len(selection))))

    def on_run(file, limit, selection, name, general: bool, request: gr.Request,
               progress=gr.Progress()):  # noqa: B008
        import pandas as pd

        tenant = tenants.for_request(request)
        variants, workspace = tenant.variants, tenant.workspace
        if not selection:
            raise gr.Error("Choose the variants to evaluate.")
        data = held_out(file, limit, name, request)
        cases = data.cases
        model_variants = variants.for_project(name)
        chosen_variants = [resolve(variants, name, v) for v in selection]
        generation = eval_generation(cases, model_variants.loaded.tokenizer)
        aids = variants.aids(name)
        model_name = tenants.model.name
        if answer_times.get(model_name) is None:
            yield gr.skip(), None, "Measuring one answer to estimate the time..."
            answer_times.measure_one(model_name, model_variants, chosen_variants[0], cases[0], generation, aids)
        estimate = (f"**Data:** {html.escape(data.description, quote=False)}.\n\n"
                    + estimate_text(answer_times.estimate(model_name, len(cases), len(chosen_variants))))
        # The chart is emptied first: Gradio's BarPlot builds its colours and legend from the first value
        # it is shown and only swaps the data after, so a run with other variants needs a chart built anew.
        yield gr.skip(), None, estimate + " Running..."
        started = time.perf_counter()

        def report_progress(fraction: float, label: str) -> None:
            elapsed = time.perf_counter() - started
            left = f", about {duration_text(elapsed / fraction * (1 - fraction))} left" if fraction > 0 else ""
            progress(fraction, desc=label + left)

        run = evaluate_project(workspace, name, model_variants, chosen_variants, cases, data.data_name, generation,
                               aids, report_progress, general=bool(general))
        report, folder, held = run.report, run.folder, run.plan_held
        answer_times.record_run(model_name, report)
        keys = METRICS + (GENERAL_METRICS if general else [])
        table = pd.DataFrame([[r.variant, *(rounded(r.metrics.get(k)) for k in keys)] for r in report.results],
                             columns=["variant", *keys])
        chart = scores_frame(report.results)
        yield table, chart, (f"{estimate} It took {duration_text(time.perf_counter() - started)}.\n\nSaved "
                             f"`{folder / 'report.json'}` and `{folder / 'report.md'}`.\n\n**Did the plan hold?** "
                             + " ".join(held) + general_ability_text(report.results))

    def on_gap(file, limit, name, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        tenant: Tenant = tenants.for_request(request)
        variants = tenant.variants
        data = held_out(file, limit, name, request, 20)
        cases = data.cases
        model_variants = variants.for_project(name)
        finding, decision = gap_check(tenant.advisor, name, model_variants, cases, data.data_name, variants.aids(name),
                                      eval_generation(cases, model_variants.loaded.tokenizer),
                                      lambda f, label: progress(f, desc=label))
        note = f"**Gap check ({html.escape(data.description, quote=False)}):** {finding.text}"
        if decision:
            note += f"\n\nThe plan now uses the measured gap **{finding.gap}**: {decision}."
        return note

    def on_judge(choice: str | None, name: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        tenant = tenants.for_request(request)
        policy = tenants.policy
        if not choice or choice == LOADED_MODEL_JUDGE:
            judge = ModelJudge(tenants.model.get())
        elif (endpoint := policy.judge(choice)) is not None:
            judge = HttpJudge(endpoint.url, endpoint.model, endpoint.api_key, label=endpoint.label,
                              allow_private=policy.may_reach_private(endpoint))
        else:
            raise gr.Error("That judge is not one this server offers: choose one from the list.")
        result = check_project_judge(tenant.workspace, name, judge,
                                     progress=lambda f, label: progress(f, desc=label))
        return judge_markdown(result)

    def judge_on_load(name: str, request: gr.Request) -> str:
        saved = saved_agreement(tenants.for_request(request).workspace, name)
        return judge_markdown(saved) if saved else ""

    private = {"api_visibility": "private"}
    judge_run.click(on_judge, [judge_choice, project], [judge_md], **private)
    load.click(judge_on_load, [project], [judge_md], **private)
    load_inputs, load_outputs = [project, chosen, eval_variants, known], [chosen, eval_variants, board, unavailable,
                                                                          known]
    load.click(on_load, load_inputs, load_outputs, **private)
    chosen.change(on_choose, [chosen, project], columns, **private)
    prompt.submit(on_prompt, [prompt, chosen, histories, project], [histories, prompt, *columns, stats],
                  api_name="compare")
    blind_prompt.submit(on_blind, [blind_prompt, chosen, project], [pair, answer_a, answer_b, reveal, board],
                        **private)
    for outcome, button in votes.items():
        button.click(make_vote(outcome), [pair, project], [pair, reveal, board], **private)
    export.click(on_export, [project], export, **private)
    for changed in (eval_file.change, eval_limit.change, eval_variants.change):
        changed(on_estimate, [eval_file, eval_limit, eval_variants, project], [eval_note], **private)
    # One progress bar, on the results table, not one on each output.
    run.click(on_run, [eval_file, eval_limit, eval_variants, project, general_box], [eval_table, eval_chart, eval_note],
              show_progress_on=eval_table, **private)
    gap.click(on_gap, [eval_file, eval_limit, project], [eval_note], **private)
    return {"on_load": on_load, "inputs": load_inputs, "outputs": load_outputs}


def scores_frame(results):
    """The Scores chart's rows (bar, metric, variant, score): the shares of each result, metric by
    metric, one bar each, the variants side by side within a metric.

    Gradio's BarPlot (6.31) has no grouped bars (no x offset): bars that share an x are stacked, so
    x="variant" with color="metric" summed four shares into one bar past 1. A bar per metric and
    variant ("exact_match · base") keeps each share its own bar, and the bars' names, sorted, put a
    metric's bars side by side.
    """
    import pandas as pd

    rows = [(f"{metric} · {result.variant}", metric, result.variant, float(result.metrics[metric]))
            for metric in SHARE_METRICS for result in results if result.metrics.get(metric) is not None]
    return pd.DataFrame(rows, columns=["bar", "metric", "variant", "score"])


def rounded(value):
    """Metrics as the table shows them: 3 decimals, nothing for a metric that does not apply."""
    return round(value, 3) if isinstance(value, float) else ("" if value is None else value)
