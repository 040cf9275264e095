"""Text from the cluster, made safe to print on a terminal. Pure.

Why: names, status messages, reasons and annotations are written by whoever can write the object (or its
Job, or the deployer's termination message). Printed raw, an escape sequence in them can move the cursor,
rewrite lines already on the screen, retitle the window or hide text, and a bidirectional override
(U+202E) can make ``Failed`` read as ``deliaF`` or reorder a command the user is told to run. So every
piece of cluster text the plugin prints goes through `for_terminal` first.

Notes
-----
Escaped, not dropped: the user still sees that something odd was there (``\\x1b[2J``), as ``kubectl``
does for the names it prints. A backslash is left alone, so escaping twice changes nothing. JSON output
needs none of this: `json.dumps` already escapes every control character and, with ``ensure_ascii``, every
non-ASCII one.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "["
    "\x00-\x1f\x7f"  # C0 controls (ESC, BEL, CR, BS, newline…) and DEL
    "\x80-\x9f"  # C1 controls (CSI U+009B starts an escape sequence on its own)
    "\u061c\u200e\u200f"  # bidirectional marks
    "\u202a-\u202e"  # bidirectional embeddings and overrides
    "\u2066-\u2069"  # bidirectional isolates
    "\u2028\u2029"  # line and paragraph separators
    "]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def for_terminal(text: object) -> str:
    """``text`` as a string with every control character and bidi override shown as an escape, e.g.
    ``\\x1b`` or ``\\u202e``; everything else, including other non-ASCII text, unchanged."""
    return _UNSAFE.sub(_escaped, str(text))
