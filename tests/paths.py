"""Where the team's shared data lives: ../shared beside the repository (as in CI)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RETRIEVAL_CORPORA = SHARED_DATA / "retrieval" / "chroma_chunking_eval" / "corpora"
