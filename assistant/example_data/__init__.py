"""Public example data for a first run: documents for retrieval, examples for training.

See SOURCES.md in this folder for where each file comes from and its licence.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent
EXAMPLE_DOCUMENTS: tuple[Path, ...] = (FOLDER / "state_of_the_union_2024.md",)
"""Documents to ingest: the base model cannot know what they say."""
EXAMPLE_TRAINING = FOLDER / "snips_train.jsonl"
"""299 Snips requests -> JSON (CC0), OpenAI chat JSONL."""
EXAMPLE_EVAL = FOLDER / "snips_eval.jsonl"
"""40 held-out Snips requests, none of them in the training file."""
EXAMPLE_QUESTIONS: tuple[str, ...] = (
    "How many people can no longer be denied health insurance because of a preexisting condition?",
    "What did the administration cut credit card late fees to?",
)
"""Questions the documents answer, to try retrieval with."""
