"""Reading PDFs in tests with poppler-utils (pdftotext, pdftoppm): what a person opening the file would read."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import pytest

INSTALL_HINT = "apt-get install -y poppler-utils fonts-tlwg-loma-otf"


def require_poppler() -> None:
    """Outside CI a missing pdftotext skips with the install command; with CI=true it fails."""
    if shutil.which("pdftotext") and shutil.which("pdftoppm"):
        return
    message = f"poppler-utils is not installed; install it with: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def pdf_text(pdf: bytes) -> str:
    """The text of a PDF in content order (pdftotext -raw: Thai marks stay with their letters)."""
    require_poppler()
    result = subprocess.run(
        ["pdftotext", "-raw", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60
    )
    return result.stdout.decode("utf-8")


def comparable(text: str) -> str:
    """Text as a reader compares it: NFKC (SARA AM = NIKHAHIT + SARA AA, as the PDF stores it), NIKHAHIT before a
    tone mark (the order shaping draws them), runs of white space as one space."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub("([\u0e48-\u0e4b])\u0e4d", "\u0e4d\\1", text)
    return re.sub(r"\s+", " ", text)


def pdf_page_png(pdf: bytes, target: Path, *, dpi: int = 80) -> Path:
    """The first page as a PNG (pdftoppm), for a person to look at."""
    require_poppler()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "doc.pdf"
        source.write_bytes(pdf)
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                str(dpi),
                "-f",
                "1",
                "-l",
                "1",
                "-singlefile",
                str(source),
                str(target.with_suffix("")),
            ],
            check=True,
            timeout=60,
        )
    return target


def pdf_fonts(pdf: bytes) -> str:
    """pdffonts' table: which fonts are embedded."""
    require_poppler()
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(pdf)
        handle.flush()
        return subprocess.run(["pdffonts", handle.name], capture_output=True, check=True, timeout=60, text=True).stdout
