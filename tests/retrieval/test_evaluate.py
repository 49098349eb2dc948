"""Retrieval metrics, checked against cases worked out by hand."""

import json

import pytest

from retrieval.evaluate import GoldAnswer, RetrievedChunk, merged, read_questions, score_retrieval, span_scores

GOLD = GoldAnswer("when?", "manual.md", ((10, 20), (15, 30)), answer="in March")
CHUNKS = [RetrievedChunk("manual.md", 0, 20, "intro ... released in  MARCH"),
          RetrievedChunk("manual.md", 25, 40, "tail"),
          RetrievedChunk("other.md", 0, 100, "unrelated")]


def test_overlapping_gold_spans_count_once():
    assert merged([(15, 30), (10, 20), (40, 40), (30, 35)]) == [(10, 35)]


def test_span_recall_precision_and_iou_by_hand():
    scores = span_scores(CHUNKS, GOLD)
    # gold: 10..30 (20 chars); covered: 10..20 and 25..30 (15); retrieved: 20 + 15 + 100 = 135 chars
    assert scores.recall == pytest.approx(15 / 20)
    assert scores.precision == pytest.approx(15 / 135)
    assert scores.iou == pytest.approx(15 / (135 + 20 - 15))


def test_the_report_keeps_recall_mrr_and_adds_span_and_answer_metrics():
    missing = GoldAnswer("who?", "manual.md", ((500, 600),), answer="Ada")
    scores = score_retrieval([CHUNKS, CHUNKS], [GOLD, missing], ks=(1, 5), span_k=2).to_dict()
    assert scores["recall@1"] == 0.5 and scores["mrr"] == 0.5
    assert scores["span_recall@2"] == pytest.approx((15 / 20 + 0) / 2, abs=1e-4)
    assert scores["span_precision@2"] == pytest.approx((15 / 35 + 0) / 2, abs=1e-4)  # only the top 2 chunks count
    assert scores["answer_recall@1"] == 0.5  # "in March" is in the first chunk, whatever its case and spacing


def test_questions_without_spans_or_answers_leave_those_metrics_out():
    scores = score_retrieval([CHUNKS], [GoldAnswer("q", "manual.md")], ks=(5,)).to_dict()
    assert scores == {"questions": 1, "mrr": 1.0, "recall@5": 1.0}


def test_jsonl_questions_may_carry_an_answer(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "when?", "source": "manual.md", "spans": [[10, 30]],
                                "answer": "in March"}) + "\n")
    assert read_questions(str(path)) == [GoldAnswer("when?", "manual.md", ((10, 30),), "in March")]
