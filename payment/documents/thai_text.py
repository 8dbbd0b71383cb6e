"""Correct text (copy, search, pdftotext, screen readers) for Thai in WeasyPrint's PDFs.

WeasyPrint maps each glyph to the text of the cluster where it first meets it. Thai shaping shares glyphs between
clusters (SARA AM is drawn as NIKHAHIT + SARA AA; tone marks take positional variants such as `uni0E49.low`), so
the first word decides: after "จำกัด" every "า" of the document would read as "ำ". Glyph names of Thai fonts
(TLWG's Loma among them) name the character each glyph draws, so the fonts this module touches start with that
mapping for their Thai glyphs, and WeasyPrint keeps what is already there. SARA AM then reads as NIKHAHIT +
SARA AA, its compatibility decomposition (equal under NFKC).
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from typing import Any

_THAI_GLYPH = re.compile(r"^uni(0E[0-7][0-9A-F])(?:\.|$)")


@lru_cache(maxsize=16)
def thai_glyph_text(font_bytes: bytes, index: int) -> dict[int, str]:
    """Glyph id -> the Thai character it draws, from the font's glyph names (variants included)."""
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(font_bytes), fontNumber=index, lazy=True)
    found: dict[int, str] = {}
    for glyph_id, name in enumerate(font.getGlyphOrder()):
        match = _THAI_GLYPH.match(name)
        if match and match.group(1) != "0E33":  # SARA AM is drawn decomposed
            found[glyph_id] = chr(int(match.group(1), 16))
    return found


_installed: list[bool] = []


def install() -> None:
    """Make WeasyPrint's fonts start with the Thai glyph mapping (once per process)."""
    if _installed:
        return
    from weasyprint.pdf import stream

    base: Any = stream.Font

    class ThaiTextFont(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            try:
                mapping = thai_glyph_text(bytes(self.file_content), int(self.index or 0))
            except Exception:  # an unreadable font keeps WeasyPrint's own mapping
                mapping = {}
            for glyph_id, char in mapping.items():
                self.to_unicode.setdefault(glyph_id, char)

    stream.Font = ThaiTextFont
    _installed.append(True)
