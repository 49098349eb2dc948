"""The Knowledge tab: upload documents, see what is indexed, search, and ask with sources.

Wiring only: the work is done by assistant.services.knowledge (index) and the tenant's project variants
(answers: the "base + retrieval" variant, as Compare, ``tunewise chat --retrieval`` and ``/v1`` answer).
Every piece of document text and every model answer is escaped before display.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import gradio as gr

from assistant.example_data import EXAMPLE_DOCUMENTS, EXAMPLE_QUESTIONS
from assistant.runtime.generation import GenerationSettings, ModelUnavailableError
from assistant.runtime.variants import Variant
from assistant.services.eval_questions import (
    REVIEW_COLUMNS,
    QuestionsError,
    QuestionSettings,
    draft_questions,
    questions_from_rows,
    questions_path,
    review_rows,
    save_questions,
    saved_questions,
)
from assistant.services.knowledge import KnowledgeBases
from assistant.services.tenants import Tenants
from retrieval.documents import location
from retrieval.loaders import SUPPORTED_SUFFIXES
from retrieval.search import DEFAULT_SEARCH_MODE, SEARCH_MODES
from ui.uploads import UploadRefusedError, discard_upload, uploaded_file

DOCUMENT_COLUMNS = ["file", "title", "chunks", "characters"]
RESULT_COLUMNS = ["file", "result", "chunks", "what to do"]
ASK_VARIANT = Variant(None, ("retrieval",))
"""Ask answers as "base + retrieval": the frozen base with every adapter disabled, whatever Compare or
/v1 attached to the shared model, on the project's documents."""
GENERATION = GenerationSettings(max_new_tokens=256, seed=0)
"""Compare's settings (ui.compare_tab.GENERATION), so Ask and Compare's "base + retrieval" agree."""
EXAMPLE_NOTE = ("<small>Example data: the 2024 State of the Union address, a work of the US federal government "
                "(public domain). Sources and licences: <code>assistant/example_data/SOURCES.md</code>.</small>")


def documents_table(kbs: KnowledgeBases, project: str) -> list[list]:
    """The project's documents; none for a project that does not exist yet (the table is not a
    reason to create it)."""
    if not kbs.workspace.exists(project):
        return []
    return [[d.source, d.title, d.chunks, d.chars] for d in kbs.get(project).documents()]


def highlight(text: str, query: str) -> str:
    """Escaped text with the query's words marked."""
    escaped = html.escape(" ".join(text.split()))
    words = sorted({w for w in re.findall(r"\w{3,}", query.lower())}, key=len, reverse=True)
    if not words:
        return escaped
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")", re.IGNORECASE)
    return pattern.sub(r"<mark>\1</mark>", escaped)


def hits_html(hits, query: str) -> str:
    if not hits:
        return "<p>No matching passages.</p>"
    items = []
    for rank, hit in enumerate(hits, 1):
        where = html.escape(location(hit.source, hit.page, hit.section))
        items.append(f"<div class='tw-hit'><b>{rank}. {where}</b> <small>score {hit.score:.3f}, "
                     f"characters {hit.start}-{hit.end}</small><p>{highlight(hit.text[:700], query)}</p></div>")
    return "\n".join(items)


def sources_html(sources) -> str:
    if not sources:
        return ""
    rows = []
    for s in sources:
        where = html.escape(location(s.source, s.page, s.section))
        rows.append(f"<li><b>[{s.number}] {where}</b><br><small>{html.escape(s.snippet)}</small></li>")
    return "<p><b>Sources</b></p><ol style='list-style:none;padding-left:0'>" + "".join(rows) + "</ol>"


def build_knowledge_tab(tenants: Tenants, project: gr.Dropdown) -> dict:
    gr.Markdown("Upload the documents that hold the facts. They are split into passages, embedded and "
                "indexed; answers cite the passages they use. Supported: "
                + ", ".join(SUPPORTED_SUFFIXES) + ", or a .zip of them.")
    with gr.Row():
        with gr.Column(scale=2):
            upload = gr.File(label="Documents", file_count="multiple", type="filepath",
                             file_types=[*SUPPORTED_SUFFIXES, ".zip"], elem_id="kb-upload")
            with gr.Row():
                add = gr.Button("Add to index", variant="primary", elem_id="kb-add")
                try_example = gr.Button("Try it with example data", elem_id="kb-example")
            gr.Markdown(EXAMPLE_NOTE)
            results = gr.Dataframe(headers=RESULT_COLUMNS, label="Upload results", interactive=False,
                                   elem_id="kb-results")
        with gr.Column(scale=3):
            documents = gr.Dataframe(headers=DOCUMENT_COLUMNS, label="Indexed documents", interactive=False,
                                     elem_id="kb-documents")
            with gr.Row():
                to_delete = gr.Dropdown([], label="Document to delete", scale=3)
                delete = gr.Button("Delete", variant="stop", scale=1)
    with gr.Row():
        with gr.Column():
            query = gr.Textbox(label="Search", placeholder="Words or a question", elem_id="kb-search")
            with gr.Row():
                k = gr.Slider(1, 20, value=5, step=1, label="Passages")
                mode = gr.Radio(list(SEARCH_MODES), value=DEFAULT_SEARCH_MODE, label="Mode")
            hits = gr.HTML(elem_id="kb-hits")
        with gr.Column():
            with gr.Row():
                question = gr.Textbox(label="Ask", placeholder="A question answered from your documents",
                                      elem_id="kb-ask", scale=4)
                ask = gr.Button("Ask", variant="primary", scale=0, elem_id="kb-ask-button")
            answer = gr.Textbox(label="Answer", interactive=False, lines=6, elem_id="kb-answer")
            sources = gr.HTML(elem_id="kb-sources")
    with gr.Accordion("Measure retrieval on your questions", open=False):
        gr.Markdown("Upload questions with their gold passages: JSONL with `question`, `source` (the file name), "
                    "optional `spans` ([[start, end], ...] in the extracted text) or `quote` (the passage's own "
                    "words) and `answer`; or the chunking-"
                    "evaluation CSV (`question`, `references`, `corpus_id`). Every search mode is scored: recall@k "
                    "and MRR (the passage was found), span recall, precision and IoU (how much of what was "
                    "retrieved is the answer) and answer recall.")
        gr.Markdown("No questions yet? Make them from your documents: the model writes one question per passage "
                    "(the passage is its gold answer). Edit the questions, untick or delete the bad ones, then save "
                    "them as this project's questions; Measure uses them when no file is uploaded.")
        with gr.Row():
            question_count = gr.Number(value=QuestionSettings.count, minimum=1, maximum=200, precision=0,
                                       label="Questions to make", scale=1, elem_id="kb-q-count")
            make_questions = gr.Button("Make questions from my documents", scale=2, elem_id="kb-q-make")
            save_drafts = gr.Button("Save as this project's questions", scale=2, elem_id="kb-q-save")
        drafts = gr.Dataframe(headers=list(REVIEW_COLUMNS), datatype=["bool", "str", "str", "str", "str"],
                              type="array", interactive=True, static_columns=[2, 3, 4], wrap=True,
                              column_widths=["8%", "37%", "15%", "10%", "30%"],
                              label="Questions for review (edit, untick or delete rows)", elem_id="kb-q-table")
        questions_note = gr.Markdown(elem_id="kb-q-note")
        with gr.Row():
            questions_file = gr.File(label="Questions (optional: else the project's saved questions)",
                                     type="filepath", file_types=[".jsonl", ".csv"], elem_id="kb-eval-file")
            measure = gr.Button("Measure", elem_id="kb-eval-run")
        scores_table = gr.Dataframe(label="Retrieval scores", interactive=False, elem_id="kb-eval-table")

    def refresh(kbs: KnowledgeBases, name: str):
        table = documents_table(kbs, name)
        return table, gr.Dropdown(choices=[row[0] for row in table], value=None)

    def ingest(kbs: KnowledgeBases, name: str, files, progress) -> list[list]:
        """Read the files and index them as one upload; a row per file with its result."""
        items = []
        for path in files:
            try:
                items.append((Path(path).name, Path(path).read_bytes()))
            except OSError as error:
                from retrieval.documents import DocumentError

                items.append((Path(path).name, DocumentError(Path(path).name, f"cannot read ({error})")))
            finally:
                discard_upload(path)  # the bytes are in hand; the index keeps only the extracted text
        outcome = kbs.get(name, create=True).ingest_uploads(items, progress=lambda f, label: progress(f, desc=label))
        return [[r.source, r.status, r.chunks, (r.error + (f" ({r.hint})" if r.hint else "")) if not r.ok else ""]
                for r in outcome]

    def on_add(files, name: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008 (gradio injects it)
        kbs = tenants.for_request(request).knowledge
        if not files:
            return [["", "nothing uploaded", 0, "choose files first"]], *refresh(kbs, name)
        accepted, refused = [], []
        for value in files if isinstance(files, (list, tuple)) else [files]:
            try:
                accepted.append(uploaded_file(value, "document"))
            except UploadRefusedError as error:  # a value naming a file the client never uploaded
                refused.append([Path(str(value)).name if isinstance(value, str) else "", "refused", 0, str(error)])
        rows = ingest(kbs, name, accepted, progress) if accepted else []
        return rows + refused, *refresh(kbs, name)

    def on_try_documents(name: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """The example documents go in as an upload would; a question they answer waits in the Ask box."""
        kbs = tenants.for_request(request).knowledge
        return ingest(kbs, name, EXAMPLE_DOCUMENTS, progress), *refresh(kbs, name), EXAMPLE_QUESTIONS[0]

    def on_delete(source: str | None, name: str, request: gr.Request):
        kbs = tenants.for_request(request).knowledge
        if source:
            kbs.get(name).delete(source)
        return refresh(kbs, name)

    def on_search(text: str, count: int, search_mode: str, name: str, request: gr.Request) -> str:
        kb = tenants.for_request(request).knowledge.get(name)
        return hits_html(kb.search(text, int(count), search_mode), text)

    def on_ask(text: str, name: str, request: gr.Request):
        if not text.strip():
            yield "Type a question first.", ""
            return
        variants = tenants.for_request(request).variants
        try:
            model = variants.for_project(name)
        except ModelUnavailableError as error:
            yield f"The model is not available: {error}", sources_html([])
            return
        for partial in model.answer_from_documents(ASK_VARIANT, text, variants.search(name), GENERATION):
            yield partial.text, sources_html(partial.sources)

    def on_measure(path: str | None, name: str, request: gr.Request):
        import pandas as pd

        from retrieval.evaluate import read_questions

        tenant = tenants.for_request(request)
        if path:
            path = uploaded_file(path, "questions file")
        else:
            path = questions_path(tenant.workspace, name)
            if not path.is_file():
                raise gr.Error("Upload a questions file, or make questions from your documents and save them as "
                               "this project's questions, first.")
        try:
            golds = read_questions(str(path))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise gr.Error(f"Cannot read the questions: {error}") from error
        try:
            return pd.DataFrame(tenant.knowledge.get(name).measure(golds, SEARCH_MODES))
        except ValueError as error:  # a quoted passage that is not in the indexed documents
            raise gr.Error(f"Cannot score the questions: {error}") from error

    def saved_view(kbs: KnowledgeBases, name: str) -> tuple[list[list], str]:
        try:
            saved = saved_questions(kbs.workspace, name)
        except QuestionsError as error:  # a hand-edited file: say so, without failing the project's view
            return [], f"The saved questions cannot be read: {error}"
        return review_rows(saved), (f"{_questions(len(saved))} saved: Measure uses them when no file is uploaded."
                                    if saved else "")

    def on_make_questions(count, name: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        tenant = tenants.for_request(request)
        candidates = draft_questions(tenant.knowledge.get(name), tenants.model.get,
                                     QuestionSettings(count=int(count or QuestionSettings.count)),
                                     lambda fraction, label: progress(fraction, desc=label))
        usable = sum(1 for c in candidates if c.question)
        note = (f"{usable} of {len(candidates)} passages gave a usable question. Review them (rows without one "
                "are unticked: write the question the passage answers, or leave them out), then save.")
        return review_rows(candidates), note

    def on_save_questions(rows, name: str, request: gr.Request):
        tenant = tenants.for_request(request)
        kept = questions_from_rows(_table_rows(rows))
        save_questions(tenant.workspace, name, kept)
        return review_rows(kept), f"Saved {_questions(len(kept))} as this project's questions."

    private = {"api_visibility": "private"}
    make_questions.click(on_make_questions, [question_count, project], [drafts, questions_note],
                         show_progress_on=drafts, **private)
    save_drafts.click(on_save_questions, [drafts, project], [drafts, questions_note], **private)
    measure.click(on_measure, [questions_file, project], [scores_table], show_progress_on=scores_table, **private)
    # One progress bar, on the results table, not one on each output.
    add.click(on_add, [upload, project], [results, documents, to_delete], api_name="ingest", show_progress_on=results)
    try_example.click(on_try_documents, [project], [results, documents, to_delete, question], show_progress_on=results,
                      **private)
    delete.click(on_delete, [to_delete, project], [documents, to_delete], **private)
    query.submit(on_search, [query, k, mode, project], hits, **private)
    # Enter in the box and the button ask the same way: a newcomer looks for a button.
    gr.on([question.submit, ask.click], on_ask, [question, project], [answer, sources], **private)

    def project_view(kbs: KnowledgeBases, name: str):
        return *refresh(kbs, name), *saved_view(kbs, name)

    return {"refresh": project_view, "outputs": [documents, to_delete, drafts, questions_note]}


def _questions(count: int) -> str:
    return f"{count} question{'' if count == 1 else 's'}"


def _table_rows(value) -> list[list]:
    """A Dataframe's value as rows, whether Gradio hands over a list of rows or a DataFrame."""
    if value is None:
        return []
    if hasattr(value, "values") and hasattr(value, "columns"):
        return value.values.tolist()
    return [list(row) for row in value]
