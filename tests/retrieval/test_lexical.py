"""The BM25 query: content words, quoted, with function words dropped."""

import pytest

from retrieval.lexical import fts_match, query_terms


@pytest.mark.parametrize("query, terms", [
    ("What is the refund window?", ["refund", "window"]),
    ("Who are you", ["who", "are", "you"]),  # only function words: keep them
    ("GPU GPU gpu 4090", ["gpu", "4090"]),
    ("a b c", []),
    ("", []),
])
def test_query_terms(query, terms):
    assert query_terms(query) == terms


def test_terms_are_quoted_so_fts_operators_are_plain_words():
    assert fts_match(["near", "or", 'say"hi']) == '"near" OR "or" OR "say""hi"'
