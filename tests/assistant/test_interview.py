"""The interview as a conversation: one question at a time, clarify, go back, finish with a plan."""

import pytest

from assistant.core import interview
from assistant.core.interview import ASKED_SLOTS
from assistant.core.profile import ProfileError
from assistant.core.rules import decide

SCRIPT = ["Turn support emails into JSON tickets", "behaviour", "no", "about 2.5k", "yes",
          "rarely", "an RTX 4090", "no preference", "no", "just one"]


def run(messages, state=None):
    state = state or interview.start()
    turn = None
    for message in messages:
        turn = interview.respond(state, message)
        state = turn.state
    return state, turn


def test_starts_with_a_greeting_and_the_first_question():
    state = interview.start()
    assert state.current_slot == "task"
    assert interview.QUESTIONS[0].text in state.transcript[0]["content"]


def test_a_full_conversation_fills_every_slot_and_plans():
    state, turn = run(SCRIPT)
    assert state.done and set(state.answers) == set(ASKED_SLOTS)  # the measured slots are not asked
    assert state.answers["examples"] == 2500 and state.answers["vram_gb"] == 24.0
    assert state.answers["model_size_b"] is None
    assert decide(state.profile()).to_dict() == state.plan().to_dict()
    assert state.plan().finetune == "lora"
    assert "plan" in turn.reply.lower()
    assert len(state.transcript) == 1 + 2 * len(SCRIPT)


def test_each_question_offers_its_quick_replies():
    state, turn = run(SCRIPT[:1])
    assert [r.value for r in turn.quick_replies] == ["knowledge", "behaviour", "both"]


@pytest.mark.parametrize("bad", ["-5", "", "lots", "   "])
def test_a_bad_answer_asks_again_and_keeps_earlier_answers(bad):
    state, _ = run(SCRIPT[:3])
    turn = interview.respond(state, bad)
    assert not turn.understood
    assert turn.state.current_slot == "examples"
    assert turn.state.answers == state.answers
    assert turn.quick_replies  # the same choices are offered again


def test_unknown_gpu_gets_a_question_about_its_memory():
    state, _ = run(SCRIPT[:6])
    turn = interview.respond(state, "my RTX 9999")
    assert not turn.understood and "GB" in turn.reply
    assert interview.respond(turn.state, "32 GB").state.answers["vram_gb"] == 32.0


def test_back_reopens_the_last_answer_only():
    state, _ = run(SCRIPT[:4])
    turn = interview.respond(state, "back")
    assert turn.state.current_slot == "examples"
    assert "examples" not in turn.state.answers
    assert turn.state.answers["documents"] is False
    state, _ = run(["300"], turn.state)
    assert state.answers["examples"] == 300


def test_back_at_the_start_is_harmless():
    turn = interview.respond(interview.start(), "back")
    assert turn.state.current_slot == "task" and "nothing to go back" in turn.reply


def test_restart_forgets_everything():
    state, _ = run(SCRIPT[:5] + ["restart"])
    assert state.answers == {} and state.current_slot == "task"


def test_messages_after_the_plan_do_not_change_it():
    state, _ = run(SCRIPT)
    turn = interview.respond(state, "what now?")
    assert turn.state.answers == state.answers


def test_editing_a_slot_directly_validates_and_keeps_the_rest():
    state, _ = run(SCRIPT)
    edited = interview.edit_answers(state, {"examples": 50})
    assert edited.answers["examples"] == 50 and edited.answers["vram_gb"] == 24.0
    assert "few_shot" in edited.plan().flags
    with pytest.raises(ProfileError, match="examples"):
        interview.edit_answers(state, {"examples": -3})


def test_state_round_trips_and_drops_invalid_saved_answers():
    state, _ = run(SCRIPT[:5])
    assert interview.InterviewState.from_dict(state.to_dict()) == state
    tampered = state.to_dict()
    tampered["answers"]["examples"] = -10
    restored = interview.InterviewState.from_dict(tampered)
    assert "examples" not in restored.answers and restored.current_slot == "examples"


def test_a_gpu_answer_to_the_examples_question_is_asked_again_not_read_as_24_examples():
    state, _ = run(SCRIPT[:3])
    turn = interview.respond(state, "one 24 GB GPU")
    assert not turn.understood and "hardware" in turn.reply and "how many examples" in turn.reply
    assert turn.state.current_slot == "examples" and turn.state.answers == state.answers
    assert turn.state.transcript[-1] == {"role": "assistant", "content": turn.reply}
    answered = interview.respond(turn.state, "about 500")
    assert answered.understood and answered.state.answers["examples"] == 500
    assert answered.state.current_slot == "can_measure"
