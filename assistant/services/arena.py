"""Blind A/B votes between variants, and the leaderboard they imply.

The maths is pure: :func:`bradley_terry` fits strengths by the classic MM iteration (Hunter
2004), :func:`leaderboard` adds win rates and bootstrap confidence intervals. Votes live in the
project's SQLite file so they survive restarts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.core.errors import InputError
from trainers.atomic_files import write_text_atomic

if TYPE_CHECKING:
    from assistant.services.workspace import Workspace

OUTCOMES = ("a", "b", "tie", "both_bad")
ELO_SCALE = 400 / math.log(10)
"""Scores on the familiar Elo scale: a 3:1 strength ratio is about 191 points."""
VOTES_FILE = "tunewise.sqlite"
"""A project's votes, in its folder."""
VOTES_CSV = "votes.csv"
"""Where a project's votes are exported, beside the store."""
MIN_GAMES_FOR_INTERVAL = 5
"""Comparisons a variant needs before its 95% interval is shown.

Five is the fewest games in which even a perfect record is unlikely to come from a coin toss
(5 wins in a row: p = 1/32 < 0.05; 4 in a row: 1/16). Below that no record can tell a variant
from a coin toss, and the bootstrap has so few distinct resamples that its interval is
degenerate (one vote: every resample gives the same score) or says nothing."""


@dataclass(frozen=True)
class Vote:
    variant_a: str
    variant_b: str
    outcome: str
    prompt: str = ""
    answer_a: str = ""
    answer_b: str = ""
    session: str = ""
    time: float = 0.0

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise InputError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        if self.variant_a == self.variant_b:
            raise InputError("a vote compares two different variants")


@dataclass(frozen=True)
class Standing:
    variant: str
    score: float
    low: float
    high: float
    wins: int
    losses: int
    ties: int
    games: int

    @property
    def win_rate(self) -> float:
        return (self.wins + 0.5 * self.ties) / self.games if self.games else 0.0

    @property
    def interval_known(self) -> bool:
        """Whether ``low``..``high`` says anything: at least :data:`MIN_GAMES_FOR_INTERVAL` games,
        and resamples that did not all land on one score (an interval under a point wide, which
        rounds to "1095-1095")."""
        return self.games >= MIN_GAMES_FOR_INTERVAL and self.high - self.low >= 1.0


def blind_pool(selected: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The variants a blind round may draw from: the ones the person selected, each once, in their
    order. Never the project's other variants: a round must compare only what was chosen.

    Raises:
        InputError: a selected variant the project does not have, or fewer than two selected.
    """
    pool = list(dict.fromkeys(selected or []))
    unknown = [name for name in pool if name not in available]
    if unknown:
        raise InputError(f"not among this project's variants ({', '.join(available)}): {', '.join(unknown)}",
                         "Load the variants again and choose among them.")
    if len(pool) < 2:
        raise InputError("blind voting draws from the variants you chose, and needs at least two",
                         "Choose two or more variants under Side by side.")
    return pool


def draw_pair(variants: Sequence[str], rng: random.Random) -> tuple[str, str]:
    """Two different variants of ``variants`` (and only of them) in random order: the blind pair
    for the next vote. Pass the person's selection (:func:`blind_pool`), not every variant."""
    pool = list(dict.fromkeys(variants))  # a name given twice must not be drawn against itself
    if len(pool) < 2:
        raise InputError("blind voting needs at least two variants")
    first, second = rng.sample(pool, 2)
    return first, second


def _results(votes: Sequence[Vote]) -> list[tuple[str, str, float]]:
    """(a, b, score of a): 1 a wins, 0 b wins, 0.5 a tie; "both bad" counts as a tie."""
    value = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
    return [(v.variant_a, v.variant_b, value[v.outcome]) for v in votes]


def bradley_terry(votes: Sequence[Vote], iterations: int = 1000, prior: float = 0.0) -> dict[str, float]:
    """Bradley-Terry strengths on the Elo scale, centred on 1000.

    ``prior`` adds that many virtual ties between every pair that met, which keeps an unbeaten
    or winless variant finite; 0 gives the plain maximum-likelihood fit.
    """
    results = _results(votes)
    players = sorted({p for a, b, _ in results for p in (a, b)})
    if not players:
        return {}
    wins = {p: 0.0 for p in players}
    games: dict[tuple[str, str], float] = {}
    for a, b, score in results:
        wins[a] += score
        wins[b] += 1.0 - score
        key = (min(a, b), max(a, b))
        games[key] = games.get(key, 0.0) + 1.0
    for key in games:
        games[key] += 2 * prior
        wins[key[0]] += prior
        wins[key[1]] += prior
    strength = {p: 1.0 for p in players}
    for _ in range(iterations):
        updated = {}
        for p in players:
            denominator = sum(n / (strength[p] + strength[q if q != p else r])
                              for (q, r), n in games.items() if p in (q, r))
            updated[p] = max(wins[p], 1e-9) / denominator if denominator else strength[p]
        mean_log = sum(math.log(s) for s in updated.values()) / len(updated)
        updated = {p: s / math.exp(mean_log) for p, s in updated.items()}
        converged = max(abs(updated[p] - strength[p]) for p in players) < 1e-10
        strength = updated
        if converged:
            break
    return {p: 1000 + ELO_SCALE * math.log(s) for p, s in strength.items()}


def leaderboard(votes: Sequence[Vote], bootstrap: int = 200, seed: int = 0, prior: float = 0.5) -> list[Standing]:
    """Standings by Bradley-Terry score with 95% bootstrap intervals, best first."""
    if not votes:
        return []
    scores = bradley_terry(votes, prior=prior)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {p: [] for p in scores}
    for _ in range(bootstrap):
        resampled = bradley_terry([votes[rng.randrange(len(votes))] for _ in votes], iterations=200, prior=prior)
        for p in scores:
            if p in resampled:
                samples[p].append(resampled[p])
    standings = []
    for p, score in scores.items():
        ordered = sorted(samples[p]) or [score]
        low = ordered[int(0.025 * (len(ordered) - 1))]
        high = ordered[int(math.ceil(0.975 * (len(ordered) - 1)))]
        wins = sum(1 for v in votes if (p, v.outcome) in {(v.variant_a, "a"), (v.variant_b, "b")})
        losses = sum(1 for v in votes if (p, v.outcome) in {(v.variant_a, "b"), (v.variant_b, "a")})
        played = sum(1 for v in votes if p in (v.variant_a, v.variant_b))
        standings.append(Standing(p, score, low, high, wins, losses, played - wins - losses, played))
    return sorted(standings, key=lambda s: -s.score)


class VoteStore:
    """Votes in the project's SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS votes (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, session TEXT, prompt TEXT,
            variant_a TEXT, variant_b TEXT, answer_a TEXT, answer_b TEXT, outcome TEXT)""")

    def add(self, vote: Vote) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO votes (time, session, prompt, variant_a, variant_b, answer_a, answer_b, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (vote.time or time.time(), vote.session, vote.prompt, vote.variant_a, vote.variant_b,
                 vote.answer_a, vote.answer_b, vote.outcome))

    def votes(self) -> list[Vote]:
        rows = self._db.execute("SELECT variant_a, variant_b, outcome, prompt, answer_a, answer_b, session, time "
                                "FROM votes ORDER BY id").fetchall()
        return [Vote(*row) for row in rows]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["time", "session", "prompt", "variant_a", "variant_b", "answer_a", "answer_b", "outcome"])
        for v in self.votes():
            writer.writerow([v.time, v.session, v.prompt, v.variant_a, v.variant_b, v.answer_a, v.answer_b, v.outcome])
        return out.getvalue()

    def close(self) -> None:
        self._db.close()


@contextlib.contextmanager
def project_votes(workspace: Workspace, project: str) -> Iterator[VoteStore]:
    """The project's vote store, open for the ``with`` block and closed after it.

    Opened per use rather than held: each request may come from another thread, and the
    project may be renamed or deleted between two requests.
    """
    store = VoteStore(workspace.project(project).path / VOTES_FILE)
    try:
        yield store
    finally:
        store.close()


def record_vote(workspace: Workspace, project: str, vote: Vote) -> None:
    """Add one vote to the project's store."""
    with project_votes(workspace, project) as store:
        store.add(vote)


def project_leaderboard(workspace: Workspace, project: str) -> list[Standing]:
    """The project's standings from all its votes, best first (see :func:`leaderboard`)."""
    with project_votes(workspace, project) as store:
        return leaderboard(store.votes())


def export_votes_csv(workspace: Workspace, project: str) -> Path:
    """Write the project's votes as CSV to ``votes.csv`` in its folder; return that path."""
    with project_votes(workspace, project) as store:
        text = store.to_csv()
    path = workspace.project(project).path / VOTES_CSV
    write_text_atomic(path, text)
    return path
