"""Counterfactual text: a word-swap perturber over demographic term pairs (paper Section 6, x -> x~).

The pairs come from an editable text file (``demographic_terms.txt`` beside this module, or the user's own):
whole words only, both directions of each pair, and the case of the original word kept ("He" -> "She").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import InfluenceError

DEFAULT_TERMS_FILE = Path(__file__).with_name("demographic_terms.txt")
# Largest term list accepted (from a file or a browser upload): a list is a few hundred lines, not a data set.
MAX_TERMS_BYTES = 1_000_000


def _keep_case(original: str, replacement: str) -> str:
    """``replacement`` in the case pattern of ``original``: UPPER, Title, or lower."""
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def parse_term_pairs(text: str, source: str = "term list") -> tuple[tuple[str, str], ...]:
    """Pairs from the file format: ``word other`` per line, ``#`` comments."""
    pairs: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) != 2 or not all(re.fullmatch(r"[^\W\d_][\w'-]*", w) for w in words):
            raise InfluenceError(f"{source}, line {number}: expected two words separated by a space, got {raw.strip()!r}")
        a, b = (w.lower() for w in words)
        if a == b:
            raise InfluenceError(f"{source}, line {number}: a word cannot be swapped with itself ({a!r})")
        pairs.append((a, b))
    if not pairs:
        raise InfluenceError(f"{source}: no term pairs found (one pair per line, e.g. 'he she')")
    return tuple(pairs)


@dataclass(frozen=True)
class WordSwapPerturber:
    """Swaps each listed word with its partner (both directions), whole words, case kept."""

    pairs: tuple[tuple[str, str], ...]
    _mapping: dict = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mapping: dict[str, str] = {}
        for a, b in self.pairs:
            # Asymmetric words ("her" is "his" and "him"): the first pair listing a word decides where it goes.
            mapping.setdefault(a.lower(), b.lower())
            mapping.setdefault(b.lower(), a.lower())
        # Longest words first so that alternatives never cut a longer word short; \b gives whole words.
        words = sorted(mapping, key=len, reverse=True)
        object.__setattr__(self, "_mapping", mapping)
        object.__setattr__(self, "_pattern", re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b",
                                                        re.IGNORECASE))

    @classmethod
    def from_text(cls, text: str, source: str = "term list") -> "WordSwapPerturber":
        """From the contents of a term-pair file (e.g. a browser upload, read as text and never executed)."""
        if len(text.encode("utf-8", errors="replace")) > MAX_TERMS_BYTES:
            raise InfluenceError(f"{source}: larger than {MAX_TERMS_BYTES} bytes; a term list is one pair per line")
        return cls(parse_term_pairs(text, source))

    @classmethod
    def from_file(cls, path: str | Path) -> "WordSwapPerturber":
        """From a term-pair file on the server (CLI or administrator setting)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InfluenceError(f"cannot read the term list {path.name}: {exc.__class__.__name__}") from None
        return cls.from_text(text, source=path.name)

    def perturb(self, text: str) -> str:
        """``text`` with every listed word replaced by its partner."""
        return self._pattern.sub(lambda m: _keep_case(m.group(0), self._mapping[m.group(0).lower()]), text)

    def perturb_all(self, texts: Iterable[str]) -> list[str]:
        """``perturb`` over a sequence of texts."""
        return [self.perturb(t) for t in texts]

    def changes(self, text: str) -> bool:
        """Whether ``text`` contains at least one listed word (its twin differs from it)."""
        return self._pattern.search(text) is not None

    __call__ = perturb


def default_perturber() -> WordSwapPerturber:
    """The perturber over the term pairs shipped with the package (``demographic_terms.txt``)."""
    return WordSwapPerturber.from_file(DEFAULT_TERMS_FILE)
