"""The manuals benchmark stays usable: every quoted gold passage is still found, exactly once, in the
text the loader extracts, so a loader change cannot silently turn questions into misses."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_manuals_question_quotes_its_document_as_the_loader_reads_it():
    checker = REPO_ROOT / "bench" / "data" / "manuals" / "check_questions.py"
    done = subprocess.run([sys.executable, str(checker)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "questions: 165 valid, 0 line problem(s)" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "OK"
