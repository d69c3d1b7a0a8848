"""Untrusted text made safe for the two places it is shown: the terminal and the prompt.

Text from documents, file names and the model is data, never instructions to the
terminal or to the model:

- `for_terminal` removes terminal escape sequences (CSI such as clear-screen, OSC
  such as window titles and OSC 8 links, DCS/APC strings, their 8-bit forms) and
  shows every other C0/C1 control character as a visible `\\xNN` escape; newline
  and tab stay unless the text must stay on one line. Rich markup is a separate
  matter: callers wrap the result in `rich.text.Text`, which never parses markup.
- `json_line` is `json.dumps` without ASCII escaping, except for the C1 controls
  (U+0080–U+009F, e.g. the 8-bit CSI), which JSON leaves raw; C0 controls and ESC are
  escaped by JSON itself.
- `for_prompt` first deletes invisible characters (Unicode category Cf: zero-width
  characters, bidi controls, the soft hyphen, tag characters; the other default
  ignorables; control characters), *then* removes chat-template tokens (`<|…|>`,
  plain tags such as `<tool_call>`, `</s>`, `<start_of_turn>`, hence also our own
  `<quellen>` delimiters) and `###` lines, and repeats until nothing changes. In
  that order no invisible character can hide a token from the removal and vanish
  later, and no removal can join two halves into a new token.

Left out: rich markup (rich.text.Text) and prompt wording (rag.answering.prompts).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# ESC [ … final byte; ESC ] / P / X / ^ / _ … up to BEL or ST; other ESC sequences; 8-bit CSI and strings.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
)
_LAYOUT_CONTROLS = frozenset("\n\t")

# Default-ignorable code points outside category Cf: they render as nothing too.
_OTHER_INVISIBLES = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
# `<|im_start|>`-style tokens, and attribute-free tags: `<tool_call>`, `</s>`, `<start_of_turn>`,
# `</quellen>`; a `###` line (the prompt files' role marker and a stop sequence).
_PROMPT_TOKENS = re.compile(
    r"<\|[^<>|]{0,40}\|>|</?[A-Za-z][\w-]{0,40}>|^[^\S\n]*###.*$", re.IGNORECASE | re.MULTILINE
)


def _visible_escape(char: str) -> str:
    return f"\\x{ord(char):02x}"  # every control character (Cc) is below U+0100


def for_terminal(text: str, single_line: bool = False) -> str:
    """`text` without escape sequences and with other control characters shown as `\\xNN`.

    Newline and tab are kept, unless `single_line` (file names, error lines) asks for
    them to be shown escaped as well.
    """
    text = _ESCAPE_SEQUENCE.sub("", text)
    kept = frozenset() if single_line else _LAYOUT_CONTROLS
    return "".join(
        _visible_escape(char) if unicodedata.category(char) == "Cc" and char not in kept else char
        for char in text
    )


_C1_ESCAPES = {code: f"\\u{code:04x}" for code in range(0x80, 0xA0)}


def json_line(value: Any) -> str:
    """`value` as one line of JSON, readable UTF-8 but without a raw control character."""
    return json.dumps(value, ensure_ascii=False).translate(_C1_ESCAPES)


def _is_invisible(char: str) -> bool:
    category = unicodedata.category(char)
    if category == "Cc":
        return char not in _LAYOUT_CONTROLS
    return category == "Cf" or char in _OTHER_INVISIBLES


def for_prompt(text: str) -> str:
    """`text` without invisible characters, chat-template tokens, delimiters and `###` lines.

    Invisible characters go first, then tokens are replaced by a space until the
    text is stable, so that neither step can assemble what the other removed.
    """
    text = "".join(char for char in text if not _is_invisible(char))
    while True:
        cleaned = _PROMPT_TOKENS.sub(" ", text)
        if cleaned == text:
            return cleaned
        text = cleaned
