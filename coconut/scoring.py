"""The reference's answer rule.

The reference decodes the whole output (prompt + generated tokens, generation stopped
at eos without keeping it) with `skip_special_tokens=True`, takes the text after the
LAST '#', removes every comma and strips surrounding whitespace. A prediction is
correct iff that equals the gold answer with its commas removed and stripped.

Pass the decoded prompt + continuation to reproduce it exactly: when the model writes
no '#', the reference compares the text after the question's last '#' (or the whole
text), which is never the bare answer. The literal eos text `<|endoftext|>` is dropped
first, as skip_special_tokens does; the added `<|latent|>`-style tokens are not special
in the reference and stay.
"""
from __future__ import annotations

from typing import Iterable

from coconut.tokenizer.markers import EOS_TEXT


def normalise_answer(answer: str) -> str:
    return answer.replace(",", "").strip()


def extract_answer(text: str) -> str:
    """Text after the last '#', commas removed, whitespace stripped."""
    return normalise_answer(text.replace(EOS_TEXT, "").split("#")[-1])


def is_correct(generated_text: str, gold_answer: str) -> bool:
    return extract_answer(generated_text) == normalise_answer(gold_answer)


def accuracy(generated_texts: Iterable[str], gold_answers: Iterable[str]) -> float:
    """Fraction of correct predictions (the two iterables must have equal length)."""
    texts, golds = list(generated_texts), list(gold_answers)
    if len(texts) != len(golds):
        raise ValueError(f"{len(texts)} predictions for {len(golds)} gold answers")
    if not texts:
        raise ValueError("accuracy of an empty set is undefined")
    return sum(is_correct(t, g) for t, g in zip(texts, golds)) / len(texts)
