"""The plan card names the model the app trains (issue 28, item 5b).

Answered "no GPU", the plan named Qwen2.5-0.5B and said LoRA "fits: no", while the app trains the
bundled SmolLM2-135M-Instruct on such a machine. A plan without a GPU now trains the bundled model,
its memory table does not call the planned CPU run a misfit, and the card can name the model training
takes here with the reason the Behaviour form gives.
"""

from assistant.core.catalog import CPU_MODEL, MODEL_CATALOG
from assistant.core.plan_report import memory_table_markdown, plan_markdown
from assistant.core.profile import TaskProfile
from assistant.core.rules import decide

NO_GPU = TaskProfile(task="Extract intents from requests as JSON", gap="both", examples=300, documents=True,
                     vram_gb=0.0)


def test_without_a_gpu_the_plan_trains_the_bundled_model():
    from assistant.runtime.model_shapes import catalog_shape_for
    from trainers.config import DEFAULT_MODEL

    plan = decide(NO_GPU)
    assert catalog_shape_for(DEFAULT_MODEL) is MODEL_CATALOG[CPU_MODEL]  # the bundled model's shape
    assert (plan.finetune, plan.model, plan.memory.model) == ("lora", CPU_MODEL, CPU_MODEL)
    rule5 = " ".join(plan.reasons_for("5"))
    assert "QLoRA needs CUDA" in rule5 and CPU_MODEL in rule5 and "rent a GPU" in rule5


def test_without_a_gpu_the_memory_table_does_not_call_the_planned_cpu_run_a_misfit():
    table = memory_table_markdown(decide(NO_GPU).to_dict())
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in table.splitlines()
            if line.startswith("| ") and "GB" in line}
    assert rows == {"Full fine-tune": "no GPU", "LoRA (16-bit base) (planned)": "CPU run",
                    "QLoRA (4-bit base)": "no: needs CUDA"}
    assert "RAM" in table


def test_with_a_gpu_the_fits_column_is_checked_against_it():
    table = memory_table_markdown(decide(TaskProfile(gap="behaviour", examples=500, vram_gb=24.0)).to_dict())
    assert "| yes |" in table and "CPU run" not in table


def test_the_card_names_the_model_trained_here_and_why():
    plan = decide(NO_GPU).to_dict()
    card = plan_markdown(plan, ("bundled:SmolLM2-135M-Instruct", "No CUDA GPU on this machine."))
    assert "**Trained here:** `bundled:SmolLM2-135M-Instruct`. No CUDA GPU on this machine." in card
    assert "not the plan's" not in card
    other = plan_markdown(decide(TaskProfile(gap="behaviour", examples=500, vram_gb=24.0)).to_dict(),
                          ("bundled:SmolLM2-135M-Instruct", "Not on this machine."))
    assert "(not the plan's Llama-3.1-8B)" in other
    assert "Trained here" not in plan_markdown(plan)  # the terminal's card, without a machine to ask
