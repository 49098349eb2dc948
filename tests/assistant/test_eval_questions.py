"""Evaluation questions drafted from a project's documents: the cleaning rules, the passages chosen,
candidates from a real index and a real (tiny, random) model, and the saved file the evaluator reads."""

import pytest

from assistant.services.eval_questions import (
    CandidateQuestion,
    NoDocumentsError,
    QuestionsError,
    QuestionSettings,
    clean_question,
    draft_questions,
    pick_passages,
    questions_from_rows,
    questions_path,
    review_rows,
    save_questions,
    saved_questions,
)
from assistant.services.workspace import Workspace
from retrieval.chunking import Chunk

PASSAGE = ("Staff get 25 days of paid leave each year, and unused days carry over to the next year up to a "
           "limit of five. Requests go to the line manager at least two weeks ahead.")

CLEANING_CASES = [
    # (reply, the question kept or None)
    ("How many days of paid leave do staff get?", "How many days of paid leave do staff get?"),
    ("How much leave carries over?\nAnswer: five days.", "How much leave carries over?"),
    ("\n\n  Who approves a leave request?  \n", "Who approves a leave request?"),
    ("Question: When must leave be requested?", "When must leave be requested?"),
    ("Sure! Here is a question: how far ahead is leave requested?", "How far ahead is leave requested?"),
    ('1. "Can unused leave days be kept?"', "Can unused leave days be kept?"),
    ("**Q:** Who approves holidays? It is the manager.", "Who approves holidays?"),
    ("Staff get 25 days of paid leave each year.", None),  # no question mark
    ("The leave policy", None),
    ("Leave?", None),  # too short to be a question
    ("What " + "very " * 60 + "long question is this?", None),
    ("Staff get 25 days of paid leave each year, and unused days carry over?", None),  # copies the passage
    ("Requests go to the line manager?", None),  # the whole question is a phrase of the passage
    ("What does the passage say about leave?", None),  # a user never sees the passage
    ("What is the answer?", None),  # generic: says nothing about any passage
    ("What's the main idea of this?", None),
    ("", None),
    ("\n  \n", None),
]


@pytest.mark.parametrize(("reply", "expected"), CLEANING_CASES)
def test_a_reply_is_cleaned_to_one_question_or_refused(reply, expected):
    assert clean_question(reply, PASSAGE) == expected


def passage(doc: str, index: int, length: int = 300) -> Chunk:
    return Chunk(f"id-{doc}:{index}", f"id-{doc}", doc, "", index, index * 1000, index * 1000 + length,
                   "x" * length)


def test_passages_are_spread_over_the_documents_seeded_and_long_enough():
    long_doc = [passage("a.md", i) for i in range(30)]
    short_doc = [passage("b.md", i) for i in range(3)] + [passage("b.md", 3, length=50)]
    picked = pick_passages(long_doc + short_doc, 6, seed=0)
    sources = [p.source for p in picked]
    assert len(picked) == 6 and sources.count("b.md") == 3  # taken in turn: the small document is not crowded out
    assert all(len(p.text) >= 200 for p in picked)  # the 50-character passage is never asked about
    assert picked == sorted(picked, key=lambda p: (p.source, p.start))
    assert picked == pick_passages(list(reversed(long_doc + short_doc)), 6, seed=0)  # deterministic
    assert pick_passages(long_doc, 6, seed=1) != pick_passages(long_doc, 6, seed=0)
    assert len(pick_passages(short_doc, 20)) == 3  # fewer passages than asked for: all of them


LEAVE = ("# Leave\n\nStaff get 25 days of paid leave each year. Unused days carry over to the next year, up to a "
         "limit of five days; anything above that is lost on the first of January. Requests go to the line manager "
         "at least two weeks ahead, through the staff portal.\n\n"
         "# Sick days\n\nAn absence through illness is reported to the line manager before ten in the morning on "
         "the first day. From the fourth day a doctor's note is needed; sick days never count against paid leave, "
         "and a sick day during a holiday turns that day back into leave.\n")
EXPENSES = ("# Expenses\n\nTravel is booked through the travel desk, economy class for flights under six hours. "
            "Receipts are uploaded within thirty days of the trip; claims without a receipt are paid only up to "
            "twenty euros. Hotel costs are covered up to the city rate published on the intranet.\n\n"
            "Short note.\n")


@pytest.fixture
def indexed(tmp_path):
    """A workspace whose default project has two real documents indexed (SQLite + Chroma)."""
    from assistant.services.knowledge import KnowledgeBase

    workspace = Workspace(tmp_path / "ws")
    for name, text in (("leave.md", LEAVE), ("expenses.md", EXPENSES)):
        (tmp_path / name).write_text(text)
    kb = KnowledgeBase(workspace, "default")
    kb.ingest([tmp_path / "leave.md", tmp_path / "expenses.md"])
    yield workspace, kb
    kb.close()


@pytest.fixture
def tiny_loader(tiny_model_path):
    from assistant.runtime.generation import ModelSettings, load_model

    loaded = load_model(ModelSettings(model=str(tiny_model_path), device="cpu"))
    return lambda: loaded


def test_candidates_carry_the_source_and_span_of_an_indexed_passage(indexed, tiny_loader):
    workspace, kb = indexed
    seen = []
    candidates = draft_questions(kb, tiny_loader, QuestionSettings(count=5, max_new_tokens=16),
                                 lambda fraction, label: seen.append((fraction, label)))
    chunks = {(c.source, c.start, c.end): c.text for d in kb.documents() for c in kb.index.document_chunks(d.doc_id)}
    long_enough = [key for key, text in chunks.items() if len(text.strip()) >= 200]
    assert len(candidates) == min(5, len(long_enough)) >= 3
    assert {c.source for c in candidates} == {"leave.md", "expenses.md"}
    for candidate in candidates:
        (start, end), = candidate.spans
        text = chunks[(candidate.source, start, end)]  # the gold span is exactly an indexed chunk's
        assert len(text) >= 200 and candidate.excerpt.split(" ...")[0] in " ".join(text.split())
        # A random-weights model writes junk: whatever is kept passed the cleaning rules.
        assert candidate.question == (clean_question(candidate.question, text) or "")
    assert seen[0] == (0.0, f"passage 1 of {len(candidates)}") and seen[-1] == (1.0, "done")
    again = draft_questions(kb, tiny_loader, QuestionSettings(count=5, max_new_tokens=16))
    assert again == candidates  # seeded passages, greedy model: the same drafts


def test_no_documents_and_no_model_are_errors_a_person_can_act_on(tmp_path, indexed):
    from assistant.runtime.generation import ModelSettings, load_model
    from assistant.services.knowledge import KnowledgeBase

    empty = KnowledgeBase(Workspace(tmp_path / "empty"), "default")
    with pytest.raises(NoDocumentsError, match="no indexed documents") as raised:
        draft_questions(empty, lambda: pytest.fail("the model is loaded only when there is something to ask"))
    assert "tunewise ingest" in raised.value.user_text()
    empty.close()

    _, kb = indexed
    with pytest.raises(NoDocumentsError, match="10000 characters or more"):
        draft_questions(kb, lambda: pytest.fail("not loaded"), QuestionSettings(min_chars=10_000))
    missing = ModelSettings(model=str(tmp_path / "no-such-model"), device="cpu")
    with pytest.raises(QuestionsError, match="no model to write the questions") as raised:
        draft_questions(kb, lambda: load_model(missing), QuestionSettings(count=2))
    assert "upload questions you wrote" in raised.value.user_text()


DRAFTS = [CandidateQuestion("How many days of paid leave do staff get?", "leave.md", ((9, 240),), "Staff get ..."),
          CandidateQuestion("", "leave.md", ((230, 480),), "Unused days ..."),
          CandidateQuestion("Where is travel booked?", "expenses.md", ((12, 300),), "Travel is ...")]

ROW_CASES = [
    # (what the person did to the table's rows, the questions saved)
    ("nothing: the unusable row stays unticked", lambda rows: rows, [DRAFTS[0], DRAFTS[2]]),
    ("edited a question", lambda rows: [[*r[:1], "How much paid leave is there?", *r[2:]] if i == 0 else r
                                        for i, r in enumerate(rows)],
     [CandidateQuestion("How much paid leave is there?", *[getattr(DRAFTS[0], f) for f in ("source", "spans",
                                                                                              "excerpt")]), DRAFTS[2]]),
    ("wrote the missing one and ticked it", lambda rows: [[True, "What happens to unused leave?", *r[2:]] if i == 1
                                                          else r for i, r in enumerate(rows)],
     [DRAFTS[0], CandidateQuestion("What happens to unused leave?", "leave.md", ((230, 480),), "Unused days ..."),
      DRAFTS[2]]),
    ("deleted the first row", lambda rows: rows[1:], [DRAFTS[2]]),
    ("unticked the last row", lambda rows: [[False, *r[1:]] if i == 2 else r for i, r in enumerate(rows)],
     [DRAFTS[0]]),
    ("ticks as the browser may send them", lambda rows: [["true", *rows[0][1:]], ["false", *rows[1][1:]]],
     [DRAFTS[0]]),
]


@pytest.mark.parametrize(("edit", "expected"), [case[1:] for case in ROW_CASES], ids=[case[0] for case in ROW_CASES])
def test_the_reviewed_table_becomes_the_questions_as_edited(edit, expected):
    assert questions_from_rows(edit(review_rows(DRAFTS))) == expected


@pytest.mark.parametrize(("row", "message"), [
    ([True, "", "leave.md", "230-480", ""], "row 1 is ticked but has no question"),
    ([True, "Why?  ", "leave.md", "230", ""], "row 1: characters must be START-END"),
    ([True, "What is leave?", "", "1-2", ""], "row 1 has no source file"),
])
def test_a_table_row_that_cannot_be_saved_is_named(row, message):
    with pytest.raises(QuestionsError, match=message):
        questions_from_rows([row])


def test_saved_questions_are_what_the_retrieval_evaluator_reads(tmp_path):
    from retrieval.evaluate import GoldAnswer, read_questions

    workspace = Workspace(tmp_path / "ws")
    workspace.ensure("default")
    assert saved_questions(workspace, "default") == []
    path = save_questions(workspace, "default", DRAFTS)
    assert path == questions_path(workspace, "default") and path.parent == workspace.project("default").path
    assert saved_questions(workspace, "default") == [DRAFTS[0], DRAFTS[2]]  # the one without a question is left out
    assert read_questions(str(path)) == [GoldAnswer(DRAFTS[0].question, "leave.md", ((9, 240),)),
                                         GoldAnswer(DRAFTS[2].question, "expenses.md", ((12, 300),))]
    with pytest.raises(QuestionsError, match="no questions to save"):
        save_questions(workspace, "default", [DRAFTS[1]])
    assert len(saved_questions(workspace, "default")) == 2  # nothing saved is lost
