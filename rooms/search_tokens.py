"""Words for the search index, the same on PostgreSQL and SQLite.

Neither database splits Chinese or Japanese into words (there are no spaces), so CJK text is
indexed as overlapping character bigrams, with the last character of each run also on its own:
明日の会議は -> 明日 日の の会 会議 議は は. Every character then starts some token, so a query of
one character is a prefix query (会 -> 会*), two characters are one exact token (a fast index
lookup), and longer ones a phrase of adjacent bigrams. Other scripts keep whole words, lowercased.

Both databases get the same space-separated tokens (their own tokenizers only split on the
spaces), so one function decides what matches everywhere (see docs/decisions.md).
"""

import re
import unicodedata
from dataclasses import dataclass

# Han (with extensions and compatibility ideographs), kana, Hangul, the ideographic iteration
# and closing marks (U+3005-3007), halfwidth katakana.
_CJK = re.compile(
    "[\u3005-\u3007\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
    "\u1100-\u11ff\u3130-\u318f\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f]"
)
MAX_INDEXED_CHARS = 20_000  # a longer body is indexed up to here (PostgreSQL caps positions)


def _is_cjk(char: str) -> bool:
    return bool(_CJK.match(char))


def _runs(text: str) -> list[tuple[bool, str]]:
    """Runs of word characters, each (is_cjk, run); anything else separates them."""
    runs: list[tuple[bool, str]] = []
    current, current_cjk = [], False
    for char in text:
        if not char.isalnum():
            if current:
                runs.append((current_cjk, "".join(current)))
            current = []
            continue
        cjk = _is_cjk(char)
        if current and cjk != current_cjk:
            runs.append((current_cjk, "".join(current)))
            current = []
        current_cjk = cjk
        current.append(char)
    if current:
        runs.append((current_cjk, "".join(current)))
    return runs


def _normalize(text: str) -> str:
    # NFKC folds full-width latin and half-width katakana into their usual forms.
    return unicodedata.normalize("NFKC", text).casefold()


def _bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)] + [run[-1]]


def document_tokens(text: str) -> str:
    """The indexed form of a message body: space-separated tokens."""
    tokens: list[str] = []
    for cjk, run in _runs(_normalize(text[:MAX_INDEXED_CHARS])):
        tokens.extend(_bigrams(run) if cjk else [run])
    return " ".join(tokens)


@dataclass(frozen=True)
class Term:
    """One part of a query that must match: a phrase of adjacent tokens; `prefix` when it is a
    single CJK character (it matches any token starting with it)."""

    tokens: tuple[str, ...]
    prefix: bool = False
    text: str = ""  # what the person typed for it, normalized (for highlighting)


MAX_TERMS = 8


def query_terms(query: str) -> list[Term]:
    """What a query asks for: every term must match (AND). Empty when it has no word at all."""
    terms = []
    for cjk, run in _runs(_normalize(query[:200])):
        if not cjk:
            terms.append(Term((run,), text=run))
        elif len(run) == 1:
            terms.append(Term((run,), prefix=True, text=run))
        else:  # adjacent bigrams; the run's last character token is not needed
            terms.append(Term(tuple(run[i : i + 2] for i in range(len(run) - 1)), text=run))
    return terms[:MAX_TERMS]


def postgres_tsquery(terms: list[Term]) -> str:
    """to_tsquery('simple', ...) text. Tokens hold only letters and digits, never quotes."""
    parts = []
    for term in terms:
        if term.prefix:
            parts.append(f"'{term.tokens[0]}':*")
        else:
            parts.append("(" + " <-> ".join(f"'{t}'" for t in term.tokens) + ")")
    return " & ".join(parts)


def fts5_query(terms: list[Term]) -> str:
    """An FTS5 MATCH expression: each term a quoted phrase (tokens never hold a double quote)."""
    parts = []
    for term in terms:
        phrase = '"' + " ".join(term.tokens) + '"'
        parts.append(phrase + "*" if term.prefix else phrase)
    return " AND ".join(parts)
