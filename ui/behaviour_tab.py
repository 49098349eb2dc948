"""The Behaviour tab: upload examples, read the report, adjust the plan's settings, train, watch.

Wiring only: assistant.services.behaviour does the work; this module turns its results into components.
"""

from __future__ import annotations

import html
import json
from dataclasses import fields
from pathlib import Path

import gradio as gr

from assistant.example_data import EXAMPLE_EVAL, EXAMPLE_TRAINING
from assistant.runtime.hardware import detect_hardware
from assistant.runtime.models import ModelUnavailableError
from assistant.services.behaviour import Behaviour, DatasetError
from assistant.services.tenants import Tenant, Tenants
from assistant.services.training_settings import SettingsChoice, project_plan, training_settings, with_overrides
from assistant.services.workspace import WorkspaceError
from trainers.config import FORM_FIELDS, TrainingConfig
from trainers.formats import FORMATS
from trainers.job_files import progress_line
from trainers.methods import METHODS as TRAINING_METHODS
from ui.model_picker import refused_model
from ui.uploads import UploadRefusedError, optional_upload

FORMAT_CHOICES = ["auto", *FORMATS]
SETTING_FIELDS = FORM_FIELDS
"""The TrainingConfig fields the form shows, in the order of its inputs (the rest keep their defaults)."""
SETTING_LABELS = {"model": "Base model (hub id or local folder)", "lora_r": "LoRA r", "lora_alpha": "LoRA alpha",
                  "lora_dropout": "LoRA dropout", "target_modules": "LoRA target modules",
                  "max_steps": "Max steps (-1: all epochs)", "max_length": "Max length (tokens)"}
SETTINGS_PER_ROW = 4
PROBLEM_COLUMNS = ["file", "lines", "count", "kind", "problem", "what to do"]
SHOWN_LINES = 5
"""Line numbers listed per problem row; the count says how many more."""
JOB_COLUMNS = ["job", "status", "step", "of", "reason"]
ADAPTER_COLUMNS = ["adapter", "method", "base model", "steps", "eval loss"]
LOSS_SERIES = {"loss": "train loss", "eval_loss": "eval loss"}
"""The progress records' loss keys, by the name of their line in the loss chart (and its legend)."""
EXAMPLE_NOTE = ("<small>Example data: 300 training and 40 held-out requests of the Snips NLU benchmark, each "
                "answered with its intent and slots as JSON (CC0 1.0; Coucke et al. 2018). Sources and licences: "
                "<code>assistant/example_data/SOURCES.md</code>.</small>")


def example_copies() -> tuple[str, str]:
    """The example training and evaluation files, copied where Gradio may serve them from.

    Gradio only puts files from the working folder or the temp folder into a File component, and
    an installed Tunewise keeps its example data in site-packages, so they are copied to the temp
    folder first (once; they are small).
    """
    import shutil
    import tempfile

    folder = Path(tempfile.gettempdir()) / "tunewise-example-data"
    folder.mkdir(exist_ok=True)
    copies = []
    for source in (EXAMPLE_TRAINING, EXAMPLE_EVAL):
        target = folder / source.name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, target)
        copies.append(str(target))
    return copies[0], copies[1]


SWEEP_METHOD_CHOICES = [name for name, entry in TRAINING_METHODS.items() if name != "full"]
"""What the method sweep offers: every registry method but a full fine-tune (a whole model per run)."""


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def report_markdown(report: dict, prepared=None) -> str:
    tokens = report["tokens"]
    lines = [f"**Format:** {report['format']} &nbsp; **Valid:** {report['valid']} of {report['records']} records"]
    if prepared is not None:
        lines.append(f"**Split:** {prepared.train_count} train, {prepared.eval_count} eval"
                     + (f", {prepared.general_count} general mixed in" if prepared.general_count else ""))
    lines.append(f"**Tokens per example:** min {tokens['min']}, median {tokens['median']}, p95 {tokens['p95']}, "
                 f"max {tokens['max']}; {tokens['over_max_length']} over the max length {tokens['max_length']}"
                 + (f", {tokens['answer_cut_off']} of them with no room left for the answer"
                    if tokens.get("answer_cut_off") else ""))
    lines.append(f"**Duplicates:** {counted(len(report['duplicates']), 'group')} &nbsp; **Conflicting answers:** "
                 f"{len(report['conflicts'])} &nbsp; **Leakage into eval:** {counted(len(report['leakage']), 'pair')}")
    if report["labels"]:
        labels = list(report["labels"].items())[:12]
        lines.append("**Labels:** " + ", ".join(f"{html.escape(k)} {v}" for k, v in labels))
    for warning in report.get("warnings", []):
        lines.append(f"**Warning:** {html.escape(warning['message'])}")
    return "\n\n".join(lines)


def problems_rows(report: dict) -> list[list]:
    """One row per distinct problem (file, kind and message), with how many lines have it and the
    first few of them, so a mistake made on every line reads as one row, not hundreds."""
    groups: dict[tuple[str, str, str], tuple[list[int], str]] = {}

    def add(file: str, line: int, kind: str, message: str, hint: str) -> None:
        groups.setdefault((file, kind, message), ([], hint))[0].append(line)

    for e in report["errors"]:
        add(e.get("file", "train"), e["line"], e["kind"], e["message"], e["hint"])
    for d in report["duplicates"]:
        add("train", d["lines"][0], f"duplicate ({d['kind']})", f"lines {d['lines']}", "keep one")
    for c in report["conflicts"]:
        add("train", c["lines"][0], "conflict", f"{c['answers']} answers on lines {c['lines']}", "pick one")
    for p in report["leakage"]:
        add("eval", p["eval_line"], f"leakage ({p['kind']})", f"train line {p['train_line']}", "remove from one")
    rows = []
    for (file, kind, message), (lines, hint) in groups.items():
        shown = ", ".join(str(n) for n in lines[:SHOWN_LINES])
        if len(lines) > SHOWN_LINES:
            shown += f" and {len(lines) - SHOWN_LINES} more"
        rows.append([file, shown, len(lines), kind, message, hint])
    return rows[:500]


def highlighted(previews) -> list[tuple[str, str | None]]:
    """The previews as (text, "trained" or None) runs for gr.HighlightedText, examples one after another."""
    runs: list[tuple[str, str | None]] = []
    for preview in previews:
        runs.append((f"\n--- example {preview.index + 1} ({preview.tokens} tokens, {preview.trained_tokens} "
                     f"trained) ---\n", None))
        runs += [(piece.text, "trained" if piece.trained else None) for piece in preview.pieces]
    return runs


def preview_notes(previews) -> str:
    """The training preview's warnings, for the report (an answer cut by max length, no markers...)."""
    lines = sorted({f"- Example {p.index + 1}: {html.escape(w)}" for p in previews for w in p.warnings})
    if not previews:
        return ""
    marked = previews[0].masking == "assistant turns"
    why = "the chat template marks assistant turns" if marked else "the chat template has no generation markers"
    head = f"\n\n**Training preview:** the loss falls on the {previews[0].masking} ({why})."
    return head + ("\n" + "\n".join(lines) if lines else "")


def form_values(values) -> dict:
    """The form's values (in SETTING_FIELDS order) by setting, typed as TrainingConfig types them."""
    data = dict(zip(SETTING_FIELDS, values, strict=True))
    ints = {f.name for f in fields(TrainingConfig) if f.type in ("int", int)}
    data = {k: (int(v) if k in ints and v is not None else v) for k, v in data.items()}
    data["target_modules"] = (data["target_modules"] or "").strip() or TrainingConfig.target_modules
    return data


def form_choice(planned: SettingsChoice, values) -> SettingsChoice:
    """The form's values over the planned settings, as ``tunewise train``'s flags are applied: the same
    function (with_overrides), so the same values give the same settings and reasons in both faces."""
    return with_overrides(planned, form_values(values))


def settings_from(values, planned: SettingsChoice | None = None) -> TrainingConfig:
    """The TrainingConfig the form's values make: over ``planned`` (see :func:`form_choice`), or as they stand."""
    if planned is not None:
        return form_choice(planned, values).config
    return TrainingConfig(**form_values(values))


def reasons_markdown(reasons: dict[str, str]) -> str:
    """The reasons beside the form's settings, one line per setting."""
    return "\n".join(f"- **{k.replace('_', ' ')}**: {html.escape(v)}" for k, v in reasons.items() if v)


def setting_input(setting):
    """The form's input for one TrainingConfig field: its kind from the field's default, its label
    and help from the field (so a new setting appears in the form without touching this tab)."""
    label = SETTING_LABELS.get(setting.name, setting.name.replace("_", " ").capitalize())
    info = setting.metadata["help"]
    elem_id = "bh-targets" if setting.name == "target_modules" else f"bh-{setting.name.replace('_', '-')}"
    if setting.metadata.get("choices"):
        return gr.Radio(list(setting.metadata["choices"]), value=setting.default, label=label, info=info,
                        elem_id=elem_id)
    if isinstance(setting.default, bool):
        return gr.Checkbox(value=setting.default, label=label, info=info, elem_id=elem_id)
    if isinstance(setting.default, (int, float)):
        return gr.Number(value=setting.default, precision=0 if isinstance(setting.default, int) else None,
                         label=label, info=info, elem_id=elem_id)
    return gr.Textbox(value=setting.default, label=label, info=info, elem_id=elem_id)


def estimate_markdown(estimate) -> str:
    memory = f"{estimate.memory_gb:.1f} GB" if estimate.memory_gb is not None else "not estimated"
    gpu = f" of {estimate.vram_gb:.0f} GB" if estimate.vram_gb else ""
    minutes = f"about {estimate.seconds / 60:.0f} min" if estimate.seconds else "unknown"
    text = (f"**Estimate ({estimate.device}, {estimate.method}):** {estimate.steps} steps, about "
            f"{estimate.tokens:,} tokens, memory {memory}{gpu}, time {minutes} (rough).")
    for note in estimate.notes:
        text += f"\n\n- {note}"
    if not estimate.fits:
        options = "\n".join(f"- {a}" for a in estimate.alternatives)
        text += f"\n\n**This does not fit in the GPU's memory.** Try:\n{options}"
    return text


def loss_frame(records: list[dict]):
    """The loss chart's value: rows (step, value, series), one per loss in ``records``, after one row
    per series with no step and no value; None (an empty chart) while there is no loss yet.

    Gradio's LinePlot (6.31) builds its Vega-Lite view once, from the first value it is given, and
    later values only swap the data: the colour scale keeps the series of that first value (a series
    missing from it is drawn with no stroke, and left out of the legend), and the layout keeps the
    axes' sizes (with no data, the y axis title and the legend end up outside the SVG). So the chart
    stays empty until the first loss, whose value names both series: Vega-Lite leaves a row with no
    x or y out of the line.
    """
    import pandas as pd

    rows = [(record["step"], float(record[key]), series) for record in records
            for key, series in LOSS_SERIES.items() if record.get(key) is not None]
    if not rows:
        return None
    rows = [(None, None, series) for series in LOSS_SERIES.values()] + rows
    return pd.DataFrame(rows, columns=["step", "value", "series"]).astype({"step": "Int64", "value": "float64"})


def build_behaviour_tab(tenants: Tenants, project: gr.Dropdown) -> dict:
    hardware = detect_hardware()

    def behaviour(request: gr.Request, name: str) -> Behaviour:
        return tenants.for_request(request).behaviour(name)

    gr.Markdown("Upload examples of the behaviour you want (chat JSONL, Alpaca, ShareGPT, or prompt/completion "
                "CSV/JSONL). Check them, adjust the settings the plan proposes, and train an adapter.")
    prepared_id = gr.State("")
    with gr.Row():
        train_file = gr.File(label="Training examples", type="filepath", elem_id="bh-train")
        eval_file = gr.File(label="Evaluation examples (optional)", type="filepath")
        general_file = gr.File(label="General instruction data to mix in (optional)", type="filepath")
    with gr.Row():
        try_example = gr.Button("Try it with example data", scale=0, elem_id="bh-example")
        gr.Markdown(EXAMPLE_NOTE)
    with gr.Row():
        fmt = gr.Dropdown(FORMAT_CHOICES, value="auto", label="Format")
        prompt_column = gr.Textbox(label="Prompt column (CSV or JSONL)", placeholder="prompt", elem_id="bh-prompt-col")
        completion_column = gr.Textbox(label="Completion column(s) (CSV or JSONL)", elem_id="bh-completion-col",
                                       placeholder="completion; or several, e.g. intent,slots",
                                       info="Several columns, comma-separated, make one JSON answer.")
        check = gr.Button("Check examples", variant="primary", elem_id="bh-check")
    report_md = gr.Markdown(elem_id="bh-report")
    preview = gr.Code(label="First examples, as the model will see them", language="json", interactive=False)
    tokens_view = gr.HighlightedText(label="Training preview: the first examples after the chat template; the "
                                           "highlighted tokens count in the loss", combine_adjacent=True,
                                     show_legend=True, color_map={"trained": "green"}, elem_id="bh-tokens")
    problems = gr.Dataframe(headers=PROBLEM_COLUMNS, label="Problems", interactive=False, elem_id="bh-problems")
    with gr.Accordion("Training settings (from the plan)", open=True):
        # The defaults until the page loads and the plan's choice (training_settings) fills them in.
        by_name = {f.name: f for f in fields(TrainingConfig)}
        setting_inputs = []
        for row in range(0, len(SETTING_FIELDS), SETTINGS_PER_ROW):
            with gr.Row():
                setting_inputs += [setting_input(by_name[name]) for name in SETTING_FIELDS[row:row + SETTINGS_PER_ROW]]
        reasons_md = gr.Markdown(elem_id="bh-reasons")
    estimate_md = gr.Markdown(elem_id="bh-estimate")
    with gr.Row():
        adapter_name = gr.Textbox(label="Adapter name", placeholder="my-adapter", elem_id="bh-adapter-name")
        start = gr.Button("Start training", variant="primary", elem_id="bh-start")
        jobs_choice = gr.Dropdown([], label="Job", allow_custom_value=True)
        cancel = gr.Button("Cancel", variant="stop")
        resume = gr.Button("Resume")
    job_md = gr.Markdown(elem_id="bh-job")
    loss_plot = gr.LinePlot(x="step", y="value", color="series", label="Loss", x_title="step", y_title="loss",
                            y_axis_format=".2f", elem_id="bh-loss")
    with gr.Row():
        jobs_table = gr.Dataframe(headers=JOB_COLUMNS, label="Jobs", interactive=False)
        adapters_table = gr.Dataframe(headers=ADAPTER_COLUMNS, label="Adapters", interactive=False,
                                      elem_id="bh-adapters")
    with gr.Accordion("Compare methods on these examples", open=False):
        gr.Markdown("One short run per method (and seed) on the checked examples, with the settings above, through "
                    "the same queue; then every adapter and the base answer the held-out cases: one table, the "
                    "best, and the cheapest whose interval overlaps the best's. Each run's adapter stays a variant.")
        with gr.Row():
            sweep_methods = gr.CheckboxGroup(SWEEP_METHOD_CHOICES, value=["lora", "ia3"], label="Methods",
                                             elem_id="bh-sweep-methods")
            sweep_seeds = gr.Number(1, precision=0, minimum=1, maximum=5, label="Seeds per method")
            sweep_halving = gr.Checkbox(False, label="Successive halving",
                                        info="every run pauses halfway; only the better half by eval loss go on")
            sweep_start = gr.Button("Compare methods", elem_id="bh-sweep")
        sweep_md = gr.Markdown(elem_id="bh-sweep-result")
    timer = gr.Timer(2.0)

    def planned(tenant: Tenant, name: str) -> SettingsChoice:
        """The settings the project's plan proposes on this machine (the CLI's `train` starts from the same)."""
        return training_settings(project_plan(tenant.workspace, name), hardware)

    def prefill(tenant: Tenant, name: str):
        choice = planned(tenant, name)
        return [*(getattr(choice.config, f) for f in SETTING_FIELDS), reasons_markdown(choice.reasons)]

    def on_prefill(name: str, request: gr.Request):
        return prefill(tenants.for_request(request), name)

    def on_settings_input(request: gr.Request, dataset_id: str, name: str, *values):
        """A setting changed by hand: alpha follows a new r (when left at the plan's value), the
        reasons say which values are the plan's and which are the person's, and the estimate is
        made again from the checked examples (steps, memory, time follow every edit)."""
        choice = form_choice(planned(tenants.for_request(request), name), values)
        estimate = gr.skip()
        if dataset_id:
            try:
                estimate = estimate_markdown(behaviour(request, name).estimate_dataset(dataset_id, choice.config,
                                                                                       hardware))
            except (ValueError, DatasetError):  # a half-typed value, or a dataset checked away: keep the last one
                estimate = gr.skip()
        return choice.config.lora_alpha, reasons_markdown(choice.reasons), estimate

    def form_settings(request: gr.Request, name: str, values) -> TrainingConfig:
        return settings_from(values, planned(tenants.for_request(request), name))

    def on_check(request: gr.Request, train, evaluation, general, format_name, prompt_col, completion_col, name,
                 *values):
        if not train:
            return "", "Upload a training file first.", "", [], "", []
        try:
            train, evaluation, general = (optional_upload(value, what) for value, what in (
                (train, "training file"), (evaluation, "evaluation file"), (general, "general data file")))
        except UploadRefusedError as error:
            return "", f"**Cannot read the file:** {html.escape(str(error))}", "", [], "", []
        return check_files(request, train, evaluation, general, format_name, prompt_col, completion_col, name, *values)

    def check_files(request: gr.Request, train: Path, evaluation: Path | None, general: Path | None, format_name,
                    prompt_col, completion_col, name, *values):
        """Check files the server trusts: uploads resolved by on_check, or the bundled examples."""
        refused = model_refused(request, name, values)
        if refused:  # before the preview reads the model's tokenizer
            return "", f"**Cannot train on this model:** {html.escape(refused)}", "", [], "", []
        try:
            settings = form_settings(request, name, values)
            read = lambda f: Path(f).read_text(encoding="utf-8") if f else None  # noqa: E731
            # "intent, slots" names several columns, which trainers.formats joins into one JSON answer
            # ({"intent": ..., "slots": ...}); spaces around the names are dropped.
            mapping = {k: ",".join(part.strip() for part in v.split(",") if part.strip())
                       for k, v in (("prompt", prompt_col), ("completion", completion_col)) if v and v.strip()}
            prepared = behaviour(request, name).prepare(
                Path(train).name, read(train), Path(evaluation).name if evaluation else None, read(evaluation),
                None if format_name == "auto" else format_name, mapping or None, read(general), settings)
        except DatasetError as error:
            report = error.report or {"errors": [], "duplicates": [], "conflicts": [], "leakage": []}
            return "", f"**Cannot train on this file:** {html.escape(str(error))}", "", problems_rows(report), "", []
        except (UnicodeDecodeError, OSError, ValueError) as error:
            return "", f"**Cannot read the file:** {html.escape(str(error))}", "", [], "", []
        first = [json.loads(line) for line in prepared.train_file.read_text().splitlines()[:3]]
        estimate = behaviour(request, name).estimate(prepared, settings, hardware)
        report = report_markdown(prepared.report, prepared)
        try:
            shown = behaviour(request, name).preview(prepared, settings)
        except ModelUnavailableError as error:
            shown, report = [], report + f"\n\n*No training preview: {html.escape(error.user_text())}*"
        report += preview_notes(shown)
        return (prepared.dataset_id, report, json.dumps(first, indent=2, ensure_ascii=False),
                problems_rows(prepared.report), estimate_markdown(estimate), highlighted(shown))

    def on_try_examples(request: gr.Request, name, *values):
        """The example files land in the upload boxes as if uploaded, and are checked at once."""
        train, evaluation = example_copies()
        checked = check_files(request, Path(train), Path(evaluation), None, "auto", "", "", name, *values)
        return train, evaluation, None, "auto", "", "", *checked

    def model_refused(request: gr.Request, name: str, values) -> str | None:
        """The base model field: one of the models this server offers (ui/model_picker.py), or refused."""
        wanted = str(dict(zip(SETTING_FIELDS, values, strict=False)).get("model") or "")
        return refused_model(tenants, tenants.for_request(request), name, wanted)

    def on_start(request: gr.Request, dataset_id, adapter, name, *values):
        if not dataset_id:
            raise gr.Error("Check the examples first.")
        refused = model_refused(request, name, values)
        if refused:
            raise gr.Error(refused[:1].upper() + refused[1:] + ".")
        try:
            settings = form_settings(request, name, values)
            service = behaviour(request, name)
            prepared = service.load_prepared(dataset_id)
            job_id = service.start(prepared, settings, adapter.strip() or f"adapter-{dataset_id}",
                                   estimate=service.estimate(prepared, settings, hardware))
        except (ValueError, DatasetError, WorkspaceError) as error:
            raise gr.Error(str(error)) from error
        return gr.Dropdown(choices=[j.job_id for j in service.jobs.jobs()], value=job_id)

    def on_cancel(job_id, name, request: gr.Request):
        if job_id:
            behaviour(request, name).jobs.cancel(job_id)

    def on_resume(job_id, name, request: gr.Request):
        if job_id:
            behaviour(request, name).jobs.start(job_id, resume=True)

    def on_tick(job_id, name, request: gr.Request):
        service = behaviour(request, name)
        jobs = service.advance()  # the timer's explicit step: register finished adapters, start the next job
        job_rows = [[j.job_id, j.status, j.step, j.max_steps, j.reason] for j in reversed(jobs)]
        adapter_rows = [[a.name, a.method, a.base_model, a.steps,
                         None if a.eval_loss is None else round(a.eval_loss, 3)] for a in service.adapters.list()]
        job_id = job_id or (jobs[-1].job_id if jobs else None)
        text, records = "No training job yet.", []
        if job_id:
            status = service.jobs.status(job_id)
            done = status.step / status.max_steps if status.max_steps else 0
            bar = f"<progress value='{status.step}' max='{max(status.max_steps, 1)}' style='width:100%'></progress>"
            records = service.jobs.progress(job_id)
            last = records[-1] if records else {}
            device = "CPU, slow" if status.device == "cpu" else (status.device or "starting")
            shown = last if status.status == "running" else {k: v for k, v in last.items() if k != "eta_s"}
            text = (f"**Job {job_id}: {status.status}** ({device}, {done:.0%}) "
                    f"{progress_line(shown | {'step': status.step, 'max_steps': status.max_steps})}\n\n{bar}")
            if status.command:
                text += f"\n\n`{html.escape(status.command)}`"
            if status.reason:
                text += f"\n\n{html.escape(status.reason)}. {html.escape(status.advice)}"
            text += f"\n\n{html.escape(service.job_memory(job_id).text())}"  # drift of the estimate, job by job
        return text, loss_frame(records), job_rows, adapter_rows

    def on_sweep(request: gr.Request, dataset_id, methods, seeds, halving, name, *values):
        """The method sweep (assistant/services/method_sweep.py): its estimate first, then the runs' progress,
        then the table. It waits on the queue in a worker thread and reports every few seconds."""
        import queue
        import threading

        from assistant.services.method_sweep import SweepConfig, plan_sweep, run_sweep

        if not dataset_id:
            raise gr.Error("Check the examples first.")
        refused = model_refused(request, name, values)  # only a model this server offers, as for one run
        if refused:
            raise gr.Error(refused[:1].upper() + refused[1:] + ".")
        service = behaviour(request, name)
        sweep = SweepConfig(tuple(methods or ()), int(seeds or 1), halving=bool(halving))
        plan = plan_sweep(service, service.load_prepared(dataset_id), form_settings(request, name, values), sweep,
                          hardware)
        head = f"**Estimate:** {html.escape(plan.text(), quote=False)}."
        yield head
        said: queue.Queue = queue.Queue()
        outcome: dict = {}

        def work() -> None:
            try:
                outcome["result"] = run_sweep(service, plan, sweep, said.put)
            except Exception as error:  # shown on the page below; the jobs keep their own state
                outcome["error"] = error
            finally:
                said.put(None)

        threading.Thread(target=work, daemon=True).start()
        lines: list[str] = []
        while (line := said.get()) is not None:
            lines = (lines + [html.escape(line, quote=False)])[-6:]
            yield head + "\n\n" + "<br>".join(lines)
        if "error" in outcome:
            raise outcome["error"]
        yield head + "\n\n" + outcome["result"].table()

    private = {"api_visibility": "private"}
    sweep_start.click(on_sweep, [prepared_id, sweep_methods, sweep_seeds, sweep_halving, project, *setting_inputs],
                      [sweep_md],
                      **private)
    check.click(on_check, [train_file, eval_file, general_file, fmt, prompt_column, completion_column, project,
                           *setting_inputs], [prepared_id, report_md, preview, problems, estimate_md, tokens_view],
                show_progress_on=report_md, **private)
    try_example.click(on_try_examples, [project, *setting_inputs],
                      [train_file, eval_file, general_file, fmt, prompt_column, completion_column, prepared_id,
                       report_md, preview, problems, estimate_md, tokens_view], show_progress_on=report_md,
                      **private)
    start.click(on_start, [prepared_id, adapter_name, project, *setting_inputs], [jobs_choice], **private)
    cancel.click(on_cancel, [jobs_choice, project], None, **private)
    resume.click(on_resume, [jobs_choice, project], None, **private)
    timer.tick(on_tick, [jobs_choice, project], [job_md, loss_plot, jobs_table, adapters_table], **private)
    alpha_input = setting_inputs[SETTING_FIELDS.index("lora_alpha")]
    for setting in setting_inputs:  # .input: a person's edit, not the prefill's
        setting.input(on_settings_input, [prepared_id, project, *setting_inputs],
                      [alpha_input, reasons_md, estimate_md], **private)
    return {"prefill": prefill, "on_prefill": on_prefill, "outputs": [*setting_inputs, reasons_md]}
