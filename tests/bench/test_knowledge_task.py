"""The knowledge task: real questions about real documents, each with a short gold answer taken
from its gold span by rules, held out from the questions a user would fine-tune on."""

import json

import pytest

from bench.knowledge_task import (
    GoldSpan,
    SourceQuestion,
    build_knowledge_task,
    is_fair_answer,
    main,
    normalise,
    read_source_questions,
    short_answer,
    stratified_sample,
)
from tests.paths import SHARED_DATA

SOURCE = SHARED_DATA / "retrieval" / "chroma_chunking_eval"


@pytest.fixture(scope="module")
def task():
    return build_knowledge_task(SOURCE)


@pytest.fixture(scope="module")
def corpora():
    return {path.name: path.read_text(encoding="utf-8") for path in (SOURCE / "corpora").glob("*.md")}


def test_at_least_50_questions_are_held_out_from_every_corpus(task):
    assert len(task.held_out) >= 50
    assert {record["source"] for record in task.held_out} == {path.name for path in task.documents}
    assert len(task.documents) == 5


def test_every_answer_is_short_and_occurs_verbatim_in_its_gold_span(task):
    for record in task.held_out:
        assert 1 <= len(record["answer"].split()) <= 6, record
        assert record["answer"] in record["context"], record


def test_every_answer_is_in_the_corpus_where_the_gold_spans_point(task, corpora):
    for record in task.held_out:
        corpus = corpora[record["source"]]
        assert any(record["answer"] in corpus[start:end] for start, end in record["spans"]), record
        assert record["context"] == "\n".join(corpus[start:end] for start, end in record["spans"])


def test_no_answer_can_be_read_off_its_question(task):
    for record in task.held_out:
        assert normalise(record["answer"]) not in normalise(record["question"]), record


def test_held_out_and_training_questions_are_disjoint_and_cover_every_question(task):
    held_out = {record["question"] for record in task.held_out}
    trained = {example["messages"][0]["content"] for example in task.train}
    assert not held_out & trained
    assert len(held_out) + len(trained) == len(read_source_questions(SOURCE)) == 472


def test_training_examples_are_chats_that_answer_with_the_gold_spans(task):
    for example in task.train:
        user, assistant = example["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert user["content"].strip() and assistant["content"].strip()


def test_the_build_is_deterministic_for_a_seed():
    assert build_knowledge_task(SOURCE, held_out=50, seed=3) == build_knowledge_task(SOURCE, held_out=50, seed=3)
    assert build_knowledge_task(SOURCE) == build_knowledge_task(SOURCE)


def test_a_smaller_held_out_set_is_a_seeded_sample_with_every_corpus_in_it():
    one, other = (build_knowledge_task(SOURCE, held_out=25, seed=seed) for seed in (0, 1))
    assert len(one.held_out) == len(other.held_out) == 25
    assert len({record["source"] for record in one.held_out}) == 5
    assert one.held_out != other.held_out
    assert len(one.train) == 472 - 25


def test_stratified_sample_gives_each_group_its_share_and_every_group_one():
    pool = {"big": list(range(80)), "mid": list(range(100, 118)), "tiny": [200, 201]}
    sample = stratified_sample(pool, 20, seed=0)
    assert len(sample) == len(set(sample)) == 20
    drawn = {name: len(set(items) & set(sample)) for name, items in pool.items()}
    assert abs(drawn["big"] - 16) <= 1 and abs(drawn["mid"] - 3.6) <= 1
    assert drawn["tiny"] == 1
    assert stratified_sample(pool, 20, seed=0) == sample


def question(text: str, span: str) -> SourceQuestion:
    return SourceQuestion(text, "x.md", (GoldSpan(0, len(span), span),))


@pytest.mark.parametrize(("text", "span", "expected"), [
    ("How many new jobs were created?", "Fifteen million new jobs in just three years.", "Fifteen million"),
    ("What percentage of ORFs changed?", "over 80% of the ORFs revealed changes", "80%"),
    ("What was the total expense for repairs in 2013?",
     "expense was $2.4 billion for 2014, $2.3 billion for 2013, and $2.1 billion for 2012", "$2.3 billion"),
    ("Who performed the percussion?", "Joe Franco performed the percussion", "Joe Franco"),
    ("Which country is Putin invading?", "Overseas, Putin of Russia is on the march, invading Ukraine.", "Ukraine"),
    ("What days is the museum closed?", "The museum is open daily except for Mondays and Tuesdays",
     "Mondays and Tuesdays"),
])
def test_rules_take_the_one_answer_of_the_kind_the_question_asks_for(text, span, expected):
    answer = short_answer(question(text, span))
    assert answer is not None and answer.text == expected


@pytest.mark.parametrize(("text", "span"), [
    ("What were the reasons for the decline in trading revenue?", "markdowns of $1.4 billion and $1.3 billion"),
    ("How many gene families out of the total evaluated were found likely to represent orthologs?",
     "A total of 275 families are represented in all 13 species. Among these, 205 contain exactly one gene per "
     "species. We consider these 205 genes to represent likely orthologs"),
    ("What was the change in long-term debt between 2004 and 2005?", "long-term debt | $3451276 | $3155228"),
    ("Who collaborated with Dorothy Barker?", "He Leadeth Me ( written in collaboration with Dorothy Barker )"),
])
def test_open_or_ambiguous_questions_get_no_answer(text, span):
    assert short_answer(question(text, span)) is None


def test_an_answer_must_not_be_guessable_from_the_question():
    assert not is_fair_answer("Voting Rights Act", "What voting rights legislation was signed?")
    assert not is_fair_answer("six", "How many topologies?")
    assert not is_fair_answer("10 @,@ 247", "How many weapons?")
    assert is_fair_answer("PACT Act", "What law helps veterans exposed to toxins?")


def test_the_cli_writes_documents_and_jsonl_files_that_the_eval_command_reads(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in (tmp_path / "documents").iterdir()) == sorted(
        path.name for path in (SOURCE / "corpora").glob("*.md"))
    held_out = [json.loads(line) for line in (tmp_path / "held_out.jsonl").read_text().splitlines()]
    chats = [json.loads(line) for line in (tmp_path / "held_out_chat.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(held_out) == len(chats) >= 50 and len(held_out) + len(train) == 472
    assert [chat["messages"][1]["content"] for chat in chats] == [record["answer"] for record in held_out]
    assert "held-out questions" in capsys.readouterr().out
