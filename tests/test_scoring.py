"""The reference's answer rule: text after the last '#', commas removed, stripped."""
import pytest

from coconut.scoring import accuracy, extract_answer, is_correct


@pytest.mark.parametrize("text, answer", [
    ("### 300", "300"),
    ("Q?\n<|start-latent|><|latent|><|end-latent|>### 1,234 \n", "1234"),
    ("<<4-2=2>>\n### 18<|endoftext|>", "18"),          # eos text is dropped
    ("a # b ### 42", "42"),                              # the LAST '#'
    ("### 4#2", "2"),
    ("### 5#", ""),                                      # nothing after the last '#'
    ("### Tom is a lempus.  \n\n", "Tom is a lempus."),
    ("###\t 1,000,000\r\n", "1000000"),
    ("### 1 000", "1 000"),                              # inner spaces stay
    ("no hash at all\n", "no hash at all"),
    ("### -3.5", "-3.5"),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_is_correct():
    assert is_correct("How much?\n### 1,234", "1234")
    assert is_correct("How much?\n### 1234", "1,234")
    assert is_correct("Is Tom a lempus or scrompus?\n### Tom is a lempus. ", "Tom is a lempus.")
    assert not is_correct("Is Tom a lempus or scrompus?\n### Tom is a scrompus.", "Tom is a lempus.")
    assert not is_correct("### 300.0", "300")            # string equality, not numeric
    # no '#' written: the whole decoded text (prompt included) is compared, as in the reference
    assert not is_correct("How much does he pay per year?\n300", "300")
    assert not is_correct("### 3#00", "300")
    assert is_correct("True", " True ")


def test_accuracy():
    texts = ["q\n### 1,000", "q\n### 7", "q\n### True", "q\n## False#"]
    golds = ["1000", "8", "True", "False"]
    assert accuracy(texts, golds) == 0.5
    assert accuracy(iter(texts[:1]), iter(golds[:1])) == 1.0
    with pytest.raises(ValueError):
        accuracy(texts, golds[:3])
    with pytest.raises(ValueError):
        accuracy([], [])
