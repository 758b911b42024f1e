"""Loaders: official JSON round trips, the reference's raw conversions, clear errors."""
import gzip
import json
import re
from pathlib import Path

import pytest

from coconut.data import (
    Example,
    load_examples,
    load_gsm8k_raw,
    load_prontoqa_raw,
    official,
    official_path,
    save_examples,
)

FIXTURES = Path(__file__).parent / "fixtures"
GSM_VALID_LINES = FIXTURES / "gsm8k_valid_lines.txt"   # lines 1, 2, 3, 9, 193 of iCoT's valid.txt
GSM_VALID_LINE_NUMBERS = (1, 2, 3, 9, 193)


def test_gsm8k_raw_conversion_equals_official_json():
    converted = load_gsm8k_raw(GSM_VALID_LINES)
    official_valid = official("gsm8k", "valid")
    assert converted == [official_valid[n - 1] for n in GSM_VALID_LINE_NUMBERS]
    assert converted[4].answer == "5,000"
    first = converted[0]
    assert first.steps == ["<<4-2=2>>", "<<2/.5=4>>", "<<12/4=3>>", "<<100*3=300>>"]
    assert first.answer == "300"
    # The question is kept verbatim, double spaces included, as the reference does.
    assert "inches.  It grows" in first.question


def test_gsm8k_raw_keeps_reference_quirks(tmp_path):
    raw = tmp_path / "gsm.txt"
    raw.write_text("How much is 1,000 + 1?||<<1000+1=1001>> <<1001*1=1001>> #### 1,001\n\n")
    (ex,) = load_gsm8k_raw(raw)
    assert ex.question == "How much is 1,000 + 1?"
    assert ex.steps == ["<<1000+1=1001>>", "<<1001*1=1001>>"]
    assert ex.answer == "1,001"


@pytest.mark.parametrize("dataset", ["prosqa", "gsm8k", "prontoqa"])
def test_official_files_save_back_byte_for_byte(dataset, tmp_path):
    path = official_path(dataset, "valid")
    examples = load_examples(path)
    out = tmp_path / "copy.json"
    save_examples(out, examples)
    with gzip.open(path, "rb") as f:
        assert out.read_bytes() == f.read()
    assert load_examples(out) == examples


def test_prosqa_graph_fields_are_loaded():
    ex = official("prosqa", "valid")[0]
    assert ex.idx_to_symbol[:4] == ["Davis", "Tom", "shumpus", "terpus"]
    assert ex.edges[:3] == [(0, 2), (1, 3), (2, 5)]
    assert (ex.root, ex.target, ex.neg_target) == (1, 16, 13)
    assert ex.answer == "Tom is a lempus."
    assert ex.has_graph and not official("gsm8k", "valid")[0].has_graph


def _sentences(text):
    return [s.strip() for s in re.findall(r"[^.]+\.", text)]


def _invert_prontoqa(example):
    """Official example → the generator's raw record it was converted from."""
    question, query = example.question.split(" True or false: ")
    chain = [s for step in example.steps for s in _sentences(step)]
    return {"test_example": {"question": question, "query": "True or false: " + query,
                             "chain_of_thought": chain, "answer": example.answer}}


def test_prontoqa_raw_conversion_reproduces_official(tmp_path):
    official_valid = official("prontoqa", "valid")[:6]
    raw = {f"example_{i + 1}": _invert_prontoqa(ex) for i, ex in enumerate(official_valid)}
    assert len(raw["example_1"]["test_example"]["chain_of_thought"]) == 11
    path = tmp_path / "5hop_0shot_random.json"
    path.write_text(json.dumps(raw))
    assert load_prontoqa_raw(path) == official_valid


def test_prontoqa_raw_pairs_an_odd_chain(tmp_path):
    raw = {"example_1": {"test_example": {
        "question": "Every a is a b. Sam is an a.", "query": "True or false: Sam is a b.",
        "chain_of_thought": ["Sam is an a.", "Every a is a b.", "Sam is a b."], "answer": "True"}}}
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(raw))
    (ex,) = load_prontoqa_raw(path)
    assert ex == Example("Every a is a b. Sam is an a. True or false: Sam is a b.",
                         ["Sam is an a. Every a is a b.", "Sam is a b."], "True")


def _error(tmp_path, content, loader=load_examples, name="bad.json"):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        loader(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_malformed_json_reports_line_and_column(tmp_path):
    message = _error(tmp_path, '[\n {"question": "q",\n  "steps": [] "answer": "a"}]')
    assert "line 3, column 15" in message  # the quote after "[] "


def test_missing_and_mistyped_fields_name_example_and_field(tmp_path):
    good = {"question": "q", "steps": ["s"], "answer": "a"}
    missing = dict(good)
    del missing["answer"]
    message = _error(tmp_path, json.dumps([good, missing]))
    assert "example 1" in message and "'answer'" in message and "missing" in message
    message = _error(tmp_path, json.dumps([good, good, dict(good, steps="s1 s2")]))
    assert "example 2" in message and "'steps'" in message and "list" in message
    message = _error(tmp_path, json.dumps([dict(good, steps=["ok", 3])]))
    assert "example 0" in message and "'steps'[1]" in message
    message = _error(tmp_path, json.dumps({"question": "q"}))
    assert "JSON list" in message


def test_bad_graph_fields_are_rejected(tmp_path):
    with gzip.open(official_path("prosqa", "valid"), "rt", encoding="utf-8") as f:
        ex = json.load(f)[0]
    message = _error(tmp_path, json.dumps([dict(ex, target=99)]))
    assert "example 0" in message and "'target'" in message
    message = _error(tmp_path, json.dumps([dict(ex, edges=[[0, 2], [1]])]))
    assert "'edges'[1]" in message
    message = _error(tmp_path, json.dumps([dict(ex, root=True)]))
    assert "'root'" in message and "integer" in message
    partial = {k: v for k, v in ex.items() if k != "neg_target"}
    message = _error(tmp_path, json.dumps([partial]))
    assert "'neg_target'" in message


def test_raw_format_errors_name_the_place(tmp_path):
    message = _error(tmp_path, "q1||<<1=1>> #### 1\nno separator here\n", load_gsm8k_raw, "gsm.txt")
    assert "line 2" in message and "'||'" in message
    message = _error(tmp_path, "q1||<<1=1>> 1\n", load_gsm8k_raw, "gsm.txt")
    assert "line 1" in message and "####" in message
    record = {"question": "q", "query": "True or false: x.", "chain_of_thought": ["a."], "answer": "True"}
    message = _error(tmp_path, json.dumps({"example_1": {"test_example": record}, "example_2": {}}), load_prontoqa_raw)
    assert "example 1 (example_2)" in message and "'test_example'" in message
    bad = dict(record, chain_of_thought="a.")
    message = _error(tmp_path, json.dumps({"example_1": {"test_example": bad}}), load_prontoqa_raw)
    assert "example 0" in message and "'chain_of_thought'" in message


def test_gzipped_json_is_read_and_its_errors_name_the_file(tmp_path):
    records = [{"question": "q", "steps": ["s"], "answer": "a"}]
    plain, packed = tmp_path / "d.json", tmp_path / "d.json.gz"
    plain.write_text(json.dumps(records))
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_examples(packed) == load_examples(plain) == [Example("q", ["s"], "a")]

    def message(content: bytes) -> str:
        packed.write_bytes(content)
        with pytest.raises(ValueError) as info:
            load_examples(packed)
        assert str(packed) in str(info.value)
        return str(info.value)

    assert "not a readable gzip file" in message(plain.read_bytes())          # plain JSON named .gz
    assert "not a readable gzip file" in message(gzip.compress(plain.read_bytes())[:-12])   # cut short
    assert "line 1, column 4" in message(gzip.compress(b"[1,"))
    assert "example 0" in message(gzip.compress(b'[{"question": "q"}]'))
