"""Cluster text made safe for a terminal: every control character and bidi override is shown, not obeyed."""

from __future__ import annotations

import unicodedata

import pytest

from sundial.cli.terminal import for_terminal

HOSTILE = [
    ("clear\x1b[2J\x1b[Hscreen", "clear\\x1b[2J\\x1b[Hscreen"),
    ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),
    ("Failed\rSucceeded", "Failed\\x0dSucceeded"),
    ("two\nlines", "two\\x0alines"),
    ("back\x08space and del\x7f", "back\\x08space and del\\x7f"),
    ("c1 csi\x9b31m", "c1 csi\\x9b31m"),
    ("\u202edeliaF", "\\u202edeliaF"),
    ("isolate\u2066x\u2069 and mark\u200f", "isolate\\u2066x\\u2069 and mark\\u200f"),
    ("line\u2028separator", "line\\u2028separator"),
]


@pytest.mark.parametrize(("text", "shown"), HOSTILE, ids=[shown for _, shown in HOSTILE])
def test_hostile_text_is_escaped_visibly(text: str, shown: str) -> None:
    assert for_terminal(text) == shown


def test_ordinary_text_including_other_scripts_is_unchanged() -> None:
    text = "Zürich → 東京: api-v42 rolled out (Ready=True), C:\\path, 100% ✓"
    assert for_terminal(text) == text


def test_escaping_twice_changes_nothing() -> None:
    once = for_terminal("".join(text for text, _ in HOSTILE))
    assert for_terminal(once) == once


BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
"""The bidirectional classes of the embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069)."""
BIDI_MARKS = {"\u200e", "\u200f", "\u061c"}


def unsafe(char: str) -> bool:
    return (
        unicodedata.category(char) in {"Cc", "Zl", "Zp"}
        or unicodedata.bidirectional(char) in BIDI_CONTROLS
        or char in BIDI_MARKS
    )


def test_no_control_or_bidi_character_survives() -> None:
    """Checked against Unicode's own properties over the ranges that hold them, not against the pattern."""
    every = "".join(chr(code) for code in [*range(0x00, 0xA0), *range(0x2000, 0x2070), 0x061C])
    assert sum(unsafe(char) for char in every) == 32 + 1 + 32 + 2 + 5 + 4 + 2 + 1
    assert not [char for char in for_terminal(every) if unsafe(char)]


def test_anything_is_turned_into_text() -> None:
    assert for_terminal(None) == "None"
    assert for_terminal(ValueError("bad\x1bthing")) == "bad\\x1bthing"
