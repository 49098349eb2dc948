"""Blind votes and the leaderboard: hand-computed cases and persistence."""

import math
import random

import pytest

from assistant.services.arena import (
    Vote,
    VoteStore,
    bradley_terry,
    draw_pair,
    export_votes_csv,
    leaderboard,
    project_leaderboard,
    project_votes,
    record_vote,
)


def votes(*spec):
    return [Vote(a, b, outcome) for a, b, outcome, count in spec for _ in range(count)]


def test_two_variants_three_wins_to_one_is_a_3_to_1_strength_ratio():
    scores = bradley_terry(votes(("A", "B", "a", 3), ("A", "B", "b", 1)))
    assert scores["A"] - scores["B"] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert (scores["A"] + scores["B"]) / 2 == pytest.approx(1000)


def test_sides_do_not_matter_and_ties_count_half():
    left = bradley_terry(votes(("A", "B", "a", 2), ("A", "B", "tie", 2)))
    right = bradley_terry(votes(("B", "A", "b", 2), ("B", "A", "both_bad", 2)))
    assert left == pytest.approx(right)
    # A scored 3 of 4: ratio 3.
    assert left["A"] - left["B"] == pytest.approx(400 * math.log10(3), abs=1e-6)


def test_a_cycle_of_equal_records_gives_equal_scores():
    scores = bradley_terry(votes(("A", "B", "a", 2), ("B", "C", "a", 2), ("C", "A", "a", 2)))
    assert scores["A"] == pytest.approx(scores["B"]) == pytest.approx(scores["C"]) == pytest.approx(1000)


def test_leaderboard_orders_counts_and_brackets_the_score():
    board = leaderboard(votes(("A", "B", "a", 8), ("A", "B", "b", 2), ("A", "C", "a", 5), ("B", "C", "tie", 4)))
    assert [s.variant for s in board][0] == "A"
    a = board[0]
    assert (a.wins, a.losses, a.ties, a.games) == (13, 2, 0, 15)
    assert a.win_rate == pytest.approx(13 / 15)
    assert all(s.low <= s.score <= s.high for s in board)


def test_blind_pairs_are_two_different_variants_in_both_orders():
    rng = random.Random(0)
    pairs = {draw_pair(["base", "adapter", "rag"], rng) for _ in range(200)}
    assert all(a != b for a, b in pairs) and len(pairs) == 6
    with pytest.raises(ValueError):
        draw_pair(["base"], rng)


def test_votes_survive_a_restart_and_export_as_csv(tmp_path):
    store = VoteStore(tmp_path / "tunewise.sqlite")
    store.add(Vote("base", "adapter", "b", prompt="hi", answer_a="x", answer_b="y", session="s1"))
    store.add(Vote("adapter", "base", "tie", prompt="yo"))
    store.close()
    reopened = VoteStore(tmp_path / "tunewise.sqlite")
    assert [(v.variant_a, v.outcome) for v in reopened.votes()] == [("base", "b"), ("adapter", "tie")]
    lines = reopened.to_csv().splitlines()
    assert lines[0].startswith("time,session,prompt") and len(lines) == 3


def test_bad_votes_are_refused():
    with pytest.raises(ValueError):
        Vote("a", "b", "maybe")
    with pytest.raises(ValueError):
        Vote("a", "a", "tie")


def test_a_projects_votes_are_kept_in_its_folder_and_exported_beside_them(tmp_path):
    from assistant.services.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    workspace.ensure("p")
    record_vote(workspace, "p", Vote("base", "adapter", "b", prompt="hi, \"you\""))
    record_vote(workspace, "p", Vote("adapter", "base", "a"))
    with project_votes(workspace, "p") as store:
        assert store.path == workspace.project("p").path / "tunewise.sqlite"
        assert [v.outcome for v in store.votes()] == ["b", "a"]
    with pytest.raises(Exception, match="closed"):
        store.votes()  # closed when the block ends
    [first, second] = project_leaderboard(workspace, "p")
    assert first.variant == "adapter" and (first.wins, first.games) == (2, 2) and second.losses == 2
    path = export_votes_csv(workspace, "p")
    assert path == workspace.project("p").path / "votes.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("time,session,prompt") and len(lines) == 3 and '"hi, ""you"""' in lines[1]


def test_a_project_without_votes_has_an_empty_board(tmp_path):
    from assistant.services.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    assert project_leaderboard(workspace, "p") == []


# --- blind rounds draw only from the selection; the interval waits for enough votes ---------------

PROJECT_VARIANTS = ["base", "base + retrieval", "snips", "snips + retrieval"]


def test_a_blind_round_draws_only_from_the_selected_variants():
    """Regression: a round drew "snips + retrieval", which was not selected."""
    from assistant.services.arena import blind_pool

    pool = blind_pool(["base", "snips", "base"], PROJECT_VARIANTS)
    assert pool == ["base", "snips"]  # each once, in the person's order
    rng = random.Random(0)
    drawn = {draw_pair(pool, rng) for _ in range(100)}
    assert drawn == {("base", "snips"), ("snips", "base")}


BLIND_POOL_REFUSALS = {
    "nothing selected": (None, "at least two"),
    "one selected": (["base"], "at least two"),
    "one selected twice": (["snips", "snips"], "at least two"),
    "a variant the project lacks": (["base", "ghost"], "not among this project's variants .*: ghost"),
}


@pytest.mark.parametrize(("selected", "message"), BLIND_POOL_REFUSALS.values(), ids=BLIND_POOL_REFUSALS.keys())
def test_a_blind_round_needs_two_known_selected_variants(selected, message):
    from assistant.services.arena import blind_pool
    from tunewise.errors import TunewiseError

    with pytest.raises(TunewiseError, match=message):
        blind_pool(selected, PROJECT_VARIANTS)


def test_a_name_given_twice_is_never_drawn_against_itself():
    rng = random.Random(0)
    assert all(a != b for a, b in (draw_pair(["base", "base", "v1"], rng) for _ in range(50)))
    with pytest.raises(ValueError):
        draw_pair(["base", "base"], rng)


INTERVAL_CASES = {
    # votes, variant, whether its interval is shown
    "one vote: every resample gives the same score": (votes(("A", "B", "a", 1)), "A", False),
    "four games, below the minimum": (votes(("A", "B", "a", 3), ("A", "B", "b", 1)), "A", False),
    "enough games on both sides": (votes(("A", "B", "a", 8), ("A", "B", "b", 4)), "A", True),
    "one variant with enough, one without": (votes(("A", "B", "a", 3), ("A", "B", "b", 2), ("A", "C", "a", 2)),
                                             "C", False),
}


@pytest.mark.parametrize(("spec", "variant", "known"), INTERVAL_CASES.values(), ids=INTERVAL_CASES.keys())
def test_the_interval_is_shown_only_once_it_says_something(spec, variant, known):
    from assistant.services.arena import MIN_GAMES_FOR_INTERVAL

    standing = next(s for s in leaderboard(spec) if s.variant == variant)
    assert standing.interval_known is known
    if known:
        assert standing.games >= MIN_GAMES_FOR_INTERVAL and standing.high - standing.low >= 1


def test_one_vote_gives_a_degenerate_bootstrap_interval():
    """What the leaderboard used to show as "1095-1095" after one vote."""
    standing = leaderboard(votes(("A", "B", "a", 1)))[0]
    assert standing.low == pytest.approx(standing.high) and not standing.interval_known
