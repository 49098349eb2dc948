"""The forgetting probe: general-text loss and multiple-choice accuracy, checked against a log-likelihood
computed by hand on the tiny random model, whatever the padding; and the bundled data with its licences."""

import json
import math

import pytest

from trainers.general_ability import (
    DATA_DIR,
    QUESTIONS_FILE,
    TEXT_FILE,
    AccuracyResult,
    GeneralAbility,
    LossResult,
    Question,
    choice_accuracy,
    general_loss,
    load_general_questions,
    load_general_texts,
    option_scores,
    option_tokens,
    question_prompt,
    ratio_interval,
    wilson_interval,
)
from tunewise.errors import InputError

TEXTS = ["The river ran quietly past the old mill.", "Rain.",
         "She walked to the market in the morning, bought bread, and came home before noon."]
QUESTIONS = [Question("What colour is the sky on a clear day?", ("blue", "green", "a loud noise"), 0),
             Question("Which is a fruit?", ("apple", "hammer", "the number seven", "sand"), 0, subject="food")]


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_path).eval(), AutoTokenizer.from_pretrained(tiny_model_path)


def by_hand(model, ids: list[int], scored_from: int) -> float:
    """Sum of log p(ids[t] | ids[:t]) for t >= scored_from, one position at a time, no batch, no mask."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    total = 0.0
    for t in range(scored_from, len(ids)):
        total += torch.log_softmax(logits[t - 1], dim=-1)[ids[t]].item()
    return total


def start_token(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def test_loss_is_the_token_weighted_mean_of_the_hand_computed_log_likelihood(tiny):
    model, tokenizer = tiny
    total_nll, total_tokens = 0.0, 0
    for text in TEXTS:
        ids = [start_token(tokenizer)] + tokenizer(text, add_special_tokens=False)["input_ids"]
        total_nll -= by_hand(model, ids, scored_from=1)
        total_tokens += len(ids) - 1

    result = general_loss(model, tokenizer, TEXTS, batch_size=2)

    assert result.tokens == total_tokens and result.passages == len(TEXTS)
    assert result.loss == pytest.approx(total_nll / total_tokens, abs=1e-4)
    assert result.low <= result.loss <= result.high
    assert result.perplexity == pytest.approx(math.exp(result.loss))


def test_option_scores_are_the_hand_computed_log_likelihood_of_each_option(tiny):
    model, tokenizer = tiny
    scores = option_scores(model, tokenizer, QUESTIONS, batch_size=3)
    for question, got in zip(QUESTIONS, scores, strict=True):
        for option, score in zip(question.choices, got, strict=True):
            context_ids, option_ids = option_tokens(tokenizer, question_prompt(question), option)
            assert score == pytest.approx(by_hand(model, context_ids + option_ids, len(context_ids)), abs=1e-4)


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_padding_and_batching_do_not_change_a_score(tiny, padding_side, batch_size):
    model, tokenizer = tiny
    alone = [general_loss(model, tokenizer, [text], batch_size=1).per_passage[0][0] for text in TEXTS]
    options_alone = [option_scores(model, tokenizer, [q], batch_size=1)[0] for q in QUESTIONS]

    tokenizer.padding_side = padding_side
    try:
        together = general_loss(model, tokenizer, TEXTS, batch_size=batch_size)
        options_together = option_scores(model, tokenizer, QUESTIONS, batch_size=batch_size)
    finally:
        tokenizer.padding_side = "right"

    assert [nll for nll, _ in together.per_passage] == pytest.approx(alone, abs=1e-4)
    for got, expected in zip(options_together, options_alone, strict=True):
        assert got == pytest.approx(expected, abs=1e-4)


def test_scores_under_inference_mode_and_leave_a_training_model_training(tiny):
    import torch

    model, tokenizer = tiny
    model.train()
    try:
        with torch.inference_mode():
            result = general_loss(model, tokenizer, TEXTS[:1])
        assert model.training
    finally:
        model.eval()
    assert result.loss == pytest.approx(general_loss(model, tokenizer, TEXTS[:1]).loss, abs=1e-5)


def test_accuracy_counts_the_best_option_and_its_wilson_interval_contains_it(tiny):
    model, tokenizer = tiny
    scores = option_scores(model, tokenizer, QUESTIONS)
    expected_raw = [max(range(len(s)), key=s.__getitem__) == q.answer for q, s in zip(QUESTIONS, scores, strict=True)]

    result = choice_accuracy(model, tokenizer, QUESTIONS, batch_size=4)

    assert result.n == 2 and result.acc == sum(expected_raw) / 2
    assert result.low <= result.acc_norm <= result.high and result.accuracy == result.acc_norm
    assert len(result.correct) == 2


def test_length_normalisation_divides_by_characters_as_the_harness_does(tiny, monkeypatch):
    import trainers.general_ability as probe

    # The short option wins on the raw sum; per character, the long one does.
    monkeypatch.setattr(probe, "option_scores", lambda *args, **kwargs: [[-2.0, -6.0]])
    question = Question("Pick one", ("no", "a much longer answer"), answer=1)

    result = choice_accuracy(*tiny, [question])

    assert (result.acc, result.acc_norm) == (0.0, 1.0)


def test_the_result_carries_the_names_an_evaluation_report_uses():
    ability = GeneralAbility(loss=LossResult(2.5, 2.4, 2.6, tokens=900, passages=10),
                             accuracy=AccuracyResult(acc=0.4, acc_norm=0.5, low=0.3, high=0.7, n=20))
    metrics = ability.to_dict()
    assert (metrics["general_loss"], metrics["general_accuracy"], metrics["general_n"]) == (2.5, 0.5, 20)
    assert metrics["general_loss_interval"] == [2.4, 2.6] and metrics["general_accuracy_interval"] == [0.3, 0.7]
    json.dumps(metrics)


@pytest.mark.parametrize(("share", "n"), [(0.0, 10), (0.3, 200), (1.0, 5), (0.5, 1)])
def test_wilson_interval_contains_the_share(share, n):
    low, high = wilson_interval(share, n)
    assert 0.0 <= low <= share <= high <= 1.0


def test_ratio_interval_contains_the_estimate_and_narrows_with_more_passages():
    sums, counts = [10.0, 14.0, 9.0, 12.0], [4, 5, 3, 5]
    estimate, low, high = ratio_interval(sums, counts)
    assert estimate == pytest.approx(sum(sums) / sum(counts)) and low < estimate < high
    _, wide_low, wide_high = ratio_interval(sums * 10, counts * 10)
    assert wide_high - wide_low < high - low


def test_the_bundled_data_loads_with_at_least_200_valid_questions_and_its_licences():
    texts, questions = load_general_texts(), load_general_questions()
    assert len(texts) >= 200 and all(text.strip() for text in texts)
    assert len(questions) >= 200
    assert all(0 <= q.answer < len(q.choices) and len(q.choices) == 4 for q in questions)
    assert len({q.subject for q in questions}) >= 50  # balanced over MMLU's subjects
    assert (DATA_DIR / "SOURCES.md").is_file()
    assert "MIT License" in (DATA_DIR / "LICENSE-mmlu-MIT").read_text()
    assert "public domain" in (DATA_DIR / "LICENSE-gutenberg-public-domain.txt").read_text()
    assert TEXT_FILE.stat().st_size + QUESTIONS_FILE.stat().st_size < 500_000


def test_a_broken_question_file_names_the_line(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps({"question": "Q?", "choices": ["a", "b"], "answer": 0}) + "\n"
                    + json.dumps({"question": "Q2?", "choices": ["a", "b"], "answer": 5}) + "\n")
    with pytest.raises(InputError, match="line 2"):
        load_general_questions(path)
