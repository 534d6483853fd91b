"""Splitting a full name into first and last, unicode-safe."""

from __future__ import annotations

import unicodedata

__all__ = ["split_full_name"]

#: Lower-case particles that belong to the family name ("Ludwig van Beethoven").
_PARTICLES = frozenset("van von der den de del della di da du la le bin binti al el dos das ter ten".split())
_HONORIFICS = frozenset("mr mrs ms miss dr prof sir".split())


def _is_cjk(text: str) -> bool:
    for char in text:
        name = unicodedata.name(char, "")
        if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")):
            return True
    return False


def split_full_name(full: str) -> tuple[str | None, str | None]:
    """Return (first, last) for a full name.

    - one word (an Indonesian mononym such as "Sukarno") -> (word, None);
    - "Last, First" -> (First, Last);
    - CJK names with a space are family-name first: "山田 太郎" -> ("太郎", "山田");
      CJK names without a space cannot be split safely -> (whole, None);
    - otherwise the last word is the family name, with its particles ("van der Berg").
    """
    text = " ".join(unicodedata.normalize("NFC", full).replace("\u3000", " ").split())
    if not text:
        return None, None
    if "," in text:
        last, _, first = text.partition(",")
        return (first.strip() or None), (last.strip() or None)
    words = text.split(" ")
    if len(words) > 1 and words[0].lower().rstrip(".") in _HONORIFICS:
        words = words[1:]
    if len(words) == 1:
        return words[0], None
    if _is_cjk(text):
        return " ".join(words[1:]), words[0]
    cut = len(words) - 1
    while cut > 1 and words[cut - 1].lower() in _PARTICLES:
        cut -= 1
    return " ".join(words[:cut]), " ".join(words[cut:])
