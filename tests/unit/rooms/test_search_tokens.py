"""The search tokens: CJK bigrams with a trailing single character, whole words elsewhere."""

from rooms.search_tokens import document_tokens, fts5_query, postgres_tsquery, query_terms


def test_japanese_is_split_into_bigrams_with_the_last_character_alone():
    assert document_tokens("明日の会議は10時") == "明日 日の の会 会議 議は は 10 時"


def test_words_are_lowercased_and_width_folded():
    assert (
        document_tokens("Quarterly REPORT, \uff46\uff55\uff4c\uff4c-width!")
        == "quarterly report full width"
    )


def test_a_two_character_query_is_one_token_and_longer_ones_a_phrase():
    assert [t.tokens for t in query_terms("会議")] == [("会議",)]
    assert [t.tokens for t in query_terms("会議室")] == [("会議", "議室")]
    assert postgres_tsquery(query_terms("Budget 会議室")) == "('budget') & ('会議' <-> '議室')"
    assert fts5_query(query_terms("Budget 会議室")) == '"budget" AND "会議 議室"'


def test_a_single_cjk_character_is_a_prefix_query():
    (term,) = query_terms("会")
    assert term.prefix
    assert fts5_query([term]) == '"会"*'
    assert postgres_tsquery([term]) == "'会':*"


def test_punctuation_and_quotes_never_reach_the_query_syntax():
    assert fts5_query(query_terms('a"b OR c*')) == '"a" AND "b" AND "or" AND "c"'
    assert query_terms("!!! ''' ...") == []
