"""The bundled SmolLM2-135M-Instruct: real weights, offline, through the product's own paths.

Toy models prove that code runs; these prove it works on a real chat model: it loads with no
network and answers, a retrieval answer cites the right document and knows what the bare model
does not, a few LoRA steps lower the loss, and the adapter attaches, switches and is refused on
another base. About two minutes on two cores (once more on a fresh machine: the one-time
conversion of the GGUF, about 40 s).
"""

import json

import pytest

from assistant.example_data import EXAMPLE_DOCUMENTS
from assistant.runtime.models import BUNDLED_MODEL, resolve_model
from tests.snips import snips_chat_jsonl

pytestmark = pytest.mark.slow
QUESTION = "How many people can no longer be denied health insurance because of a preexisting condition?"


@pytest.fixture(scope="module")
def bundled():
    from assistant.runtime.generation import ModelSettings, load_model

    return load_model(ModelSettings(device="cpu"))


@pytest.fixture(scope="module")
def trained_adapter(tmp_path_factory):
    """A LoRA adapter from a few real steps of Tunewise's training job on the bundled model."""
    from trainers.config import JobSpec
    from trainers.jobs import JobStore

    folder = tmp_path_factory.mktemp("real-lora")
    (folder / "train.jsonl").write_text(snips_chat_jsonl("train", limit=32, seed=0))
    store = JobStore(folder / "jobs")
    job = store.create(JobSpec.of(model=BUNDLED_MODEL, model_path=resolve_model(BUNDLED_MODEL),
                                    train_file=str(folder / "train.jsonl"), learning_rate=1e-3, max_steps=8,
                                    batch_size=4, max_length=128, logging_steps=1, save_steps=1000, device="cpu"))
    store.start(job)
    status = store.wait(job, timeout=600)
    assert status.status == "completed", status.reason
    return status.adapter_dir, store.progress(job)


def chat_json(capsys, *args) -> dict:
    from ui.cli import main

    assert main(["chat", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.timeout(300)
def test_the_default_model_answers_offline_and_stops_at_the_end_of_its_turn(tmp_path, capsys):
    answer = chat_json(capsys, "What is the capital of France?", "--workspace", str(tmp_path))
    assert answer["model"] == BUNDLED_MODEL
    assert "Paris" in answer["answer"]
    assert len(answer["answer"].split()) < 20, answer["answer"]  # one sentence, not a reply run to the cap


@pytest.mark.timeout(300)
def test_retrieval_answers_from_the_right_document_what_the_bare_model_cannot(tmp_path, capsys):
    from ui.cli import main

    other = tmp_path / "leave_policy.md"
    other.write_text("# Leave\n\nStaff get 25 days of paid leave each year, and 30 after five years.\n")
    workspace = ["--workspace", str(tmp_path / "ws")]
    assert main(["ingest", str(EXAMPLE_DOCUMENTS[0]), str(other), *workspace]) == 0
    capsys.readouterr()
    grounded = chat_json(capsys, QUESTION, "--retrieval", *workspace)
    bare = chat_json(capsys, QUESTION, *workspace)
    assert grounded["sources"][0]["source"] == "state_of_the_union_2024.md"
    assert "100 million" in grounded["answer"] and "100 million" not in bare["answer"]
    cited = [int(n) for n in __import__("re").findall(r"\[(\d+)\]", grounded["answer"])]
    assert cited and all(grounded["sources"][n - 1]["source"] == "state_of_the_union_2024.md" for n in cited)


@pytest.mark.timeout(600)
def test_a_few_lora_steps_lower_the_loss_on_real_weights(trained_adapter):
    _, progress = trained_adapter
    losses = [p["loss"] for p in progress if "loss" in p]
    assert len(losses) >= 4
    assert sum(losses[-2:]) / 2 < losses[0] - 0.2, losses


@pytest.mark.timeout(600)
def test_the_adapter_switches_on_one_base_and_is_refused_on_another(bundled, trained_adapter, tiny_model_path):
    from assistant.runtime.generation import GenerationSettings, LoadedModel, load_model
    from assistant.runtime.generation import ModelSettings as Settings
    from assistant.runtime.variants import AdapterBaseMismatchError, Variant, VariantModel

    adapter_dir, _ = trained_adapter
    loaded = LoadedModel(bundled.model, bundled.tokenizer, bundled.device, bundled.name)
    model = VariantModel(loaded)
    messages = [{"role": "system", "content": "Return the intent and slots of the user's request as JSON."},
                {"role": "user", "content": "play some jazz on spotify"}]
    settings = GenerationSettings(max_new_tokens=24)
    before = model.answer_batch(Variant(), [messages], settings)[0].text
    model.add_adapter("snips", adapter_dir, BUNDLED_MODEL)
    base, tuned = (model.answer_batch(v, [messages], settings)[0].text for v in (Variant(), Variant("snips")))
    assert base == before  # the base answers with the adapter switched off
    assert tuned != base
    assert model.answer_batch(Variant(), [messages], settings)[0].text == before  # and switches back

    tiny = VariantModel(load_model(Settings(model=str(tiny_model_path), device="cpu")))
    with pytest.raises(AdapterBaseMismatchError, match="trained on 'bundled:SmolLM2-135M-Instruct'"):
        tiny.add_adapter("snips", adapter_dir, BUNDLED_MODEL)
    assert tiny.adapters == []


@pytest.mark.timeout(600)
def test_ask_in_the_knowledge_tab_answers_the_example_question_as_chat_with_retrieval_does(tmp_path, capsys,
                                                                                           monkeypatch):
    """A newcomer's first try: "Try it with example data", then Ask on the question it puts in the box.
    The answer is the speech's figure, cited, and word for word what ``tunewise chat --retrieval`` says
    (the Knowledge tab used to build its own prompt, whole chunks, and answer with a ten-item list)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from assistant.runtime.generation import ModelSettings
    from tests.ui.handlers import REQUEST, handler
    from ui.app import build_app

    app = build_app(tmp_path / "ws", model=ModelSettings(device="cpu"))
    results, *_, question = handler(app, "on_try_documents")("default", REQUEST)
    assert question == QUESTION and [row[1] for row in results] == ["added"]
    answer, sources = list(handler(app, "on_ask")(question, "default", REQUEST))[-1]
    assert "100 million" in answer and "[1]" in answer, answer
    assert "[1] state_of_the_union_2024.md" in sources
    assert answer == chat_json(capsys, QUESTION, "--retrieval", "--workspace", str(tmp_path / "ws"))["answer"]


@pytest.mark.timeout(600)
def test_few_shot_prompting_gives_valid_json_where_the_base_does_not(bundled):
    """The prompted variant on real weights: the Snips task's system prompt and four of its training
    examples before each request turn the bare model's prose into JSON."""
    from assistant.runtime.generation import GenerationSettings
    from assistant.runtime.variants import Aids, Variant, VariantModel
    from assistant.services.evaluation import EvalCase, run_evaluation

    model = VariantModel(bundled)
    train = [json.loads(line)["messages"] for line in snips_chat_jsonl("train", limit=200, seed=0).splitlines()]
    held_out = [json.loads(line)["messages"] for line in snips_chat_jsonl("test", limit=12, seed=1).splitlines()]
    # The bare request, as a user types it: no system prompt (few-shot brings the task's own).
    cases = [EvalCase(tuple(m for m in messages[:-1] if m["role"] == "user"), messages[-1]["content"])
             for messages in held_out]
    report = run_evaluation(model, [Variant(), Variant(None, ("few-shot",))], cases, "snips",
                            GenerationSettings(max_new_tokens=64), Aids(examples=model.examples_pool(train)))
    base, few_shot = (r.metrics["json_valid"] for r in report.results)
    assert base <= 0.25 and few_shot >= 0.75, (base, few_shot, report.results[1].answers[:3])
