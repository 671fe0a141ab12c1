"""One-line messages: how optbench keeps an error to a line a person can read."""

from __future__ import annotations

LINE_LIMIT = 300
"""The longest error line, in characters; ``one_line`` cuts longer ones in the middle."""


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` as one line of at most ``limit`` characters.

    Line breaks become single spaces. A longer line keeps its start (what is wrong) and its
    end (the fix), with a note of how much was cut between them: a 10 MB keyword argument
    must not make a 10 MB error line.
    """
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if len(flat) <= limit:
        return flat
    room = limit - len(f" … ({len(flat)} characters cut) … ")
    head = max(room * 2 // 3, 0)
    tail = max(room - head, 0)
    note = f" … ({len(flat) - head - tail} characters cut) … "
    return flat[:head] + note + (flat[-tail:] if tail else "")
