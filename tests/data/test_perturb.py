"""The word-swap perturber: whole words, both directions, case kept, the shipped and user term lists."""

import pytest

from influence_core.data.perturb import (DEFAULT_TERMS_FILE, WordSwapPerturber, default_perturber,
                                         parse_term_pairs)
from influence_core.errors import InfluenceError


def test_swaps_both_directions_and_keeps_case():
    p = default_perturber()
    assert p("He said HIS wife was here.") == "She said HER husband was here."
    assert p("she met her brother") == "he met his sister"
    assert p("SHE") == "HE" and p("She") == "He"


def test_whole_words_only():
    p = WordSwapPerturber((("he", "she"), ("man", "woman")))
    # "the", "hero", "manager", "human" contain listed words but are not whole-word matches.
    assert p("the hero manager is human") == "the hero manager is human"
    assert p("he, the man.") == "she, the woman."
    assert not p.changes("the hero") and p.changes("a man")


def test_twice_is_identity_for_symmetric_pairs():
    p = WordSwapPerturber((("john", "mary"), ("christian", "muslim")))
    text = "John, a Christian, met MARY."
    assert p(text) == "Mary, a Muslim, met JOHN."
    assert p(p(text)) == text


def test_first_pair_decides_asymmetric_words():
    p = WordSwapPerturber.from_text("his her\nhim her\n")
    assert p("his him her") == "her her his"


def test_shipped_list_is_documented_and_covers_the_categories():
    text = DEFAULT_TERMS_FILE.read_text()
    assert text.startswith("#")
    words = {w for pair in parse_term_pairs(text) for w in pair}
    for word in ("she", "woman", "mary", "indian", "muslim"):
        assert word in words


def test_from_file_reads_a_user_list(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_text("# my list\nalpha beta\n\ngamma delta  # comment\n")
    p = WordSwapPerturber.from_file(path)
    assert p.pairs == (("alpha", "beta"), ("gamma", "delta"))
    assert p("Alpha gamma") == "Beta delta"


@pytest.mark.parametrize("text", ["one two three\n", "# only comments\n", "same same\n", "1a b\n"])
def test_bad_lists_give_one_line_errors(text):
    with pytest.raises(InfluenceError) as info:
        WordSwapPerturber.from_text(text, source="upload.txt")
    assert "\n" not in str(info.value) and "upload.txt" in str(info.value)


def test_unreadable_file_is_one_line_error(tmp_path):
    with pytest.raises(InfluenceError, match="cannot read"):
        WordSwapPerturber.from_file(tmp_path / "missing.txt")
