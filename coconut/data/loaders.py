"""Reading and writing the data formats: the official JSON files and the raw sources
the reference converts them from (iCoT's GSM8k lines, ProntoQA generator output).

Every error names the file and the place (example index or line number, field).
"""
from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Any, Iterable

from coconut.data.example import Example

# Key order of the official files, so that a loaded file saves back byte for byte.
_PLAIN_KEYS = ("question", "steps", "answer")
_PROSQA_KEYS = ("question", "answer", "steps", "idx_to_symbol", "edges", "root", "target", "neg_target")
_GRAPH_INDEX_FIELDS = ("root", "target", "neg_target")


def _read_json(path: Path) -> Any:
    """A JSON file, gzipped when its name ends in .gz."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:   # EOFError: the stream is cut short
        raise ValueError(f"{path}: not a readable gzip file ({e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}): {e.reason}") from None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require(obj: dict, field: str, where: str) -> Any:
    if field not in obj:
        raise ValueError(f"{where}: missing field '{field}'")
    return obj[field]


def _require_str(obj: dict, field: str, where: str) -> str:
    value = _require(obj, field, where)
    if not isinstance(value, str):
        raise ValueError(f"{where}: field '{field}' must be a string, got {_type_name(value)}")
    return value


def _require_str_list(obj: dict, field: str, where: str) -> list[str]:
    value = _require(obj, field, where)
    if not isinstance(value, list):
        raise ValueError(f"{where}: field '{field}' must be a list of strings, got {_type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{where}: field '{field}'[{i}] must be a string, got {_type_name(item)}")
    return list(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _node_index(value: Any, n_nodes: int, field: str, where: str) -> int:
    if not _is_int(value):
        raise ValueError(f"{where}: field '{field}' must be an integer node index, got {_type_name(value)}")
    if not 0 <= value < n_nodes:
        raise ValueError(f"{where}: field '{field}' = {value} is outside idx_to_symbol (0..{n_nodes - 1})")
    return value


def example_from_dict(obj: Any, where: str = "example") -> Example:
    """One official JSON object → Example. `where` prefixes error messages
    (e.g. "data.json: example 3")."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {_type_name(obj)}")
    question = _require_str(obj, "question", where)
    steps = _require_str_list(obj, "steps", where)
    answer = _require_str(obj, "answer", where)
    graph_fields = ("idx_to_symbol", "edges") + _GRAPH_INDEX_FIELDS
    present = [f for f in graph_fields if f in obj]
    if not present:
        return Example(question, steps, answer)
    # A graph is only usable whole: the indices mean nothing without their symbols.
    for field in graph_fields:
        _require(obj, field, where)
    idx_to_symbol = _require_str_list(obj, "idx_to_symbol", where)
    n = len(idx_to_symbol)
    raw_edges = obj["edges"]
    if not isinstance(raw_edges, list):
        raise ValueError(f"{where}: field 'edges' must be a list of [src, dst] pairs, got {_type_name(raw_edges)}")
    edges = []
    for i, pair in enumerate(raw_edges):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError(f"{where}: field 'edges'[{i}] must be a [src, dst] pair, got {pair!r}")
        src = _node_index(pair[0], n, f"edges[{i}][0]", where)
        dst = _node_index(pair[1], n, f"edges[{i}][1]", where)
        edges.append((src, dst))
    root, target, neg_target = (_node_index(obj[f], n, f, where) for f in _GRAPH_INDEX_FIELDS)
    return Example(question, steps, answer, idx_to_symbol, edges, root, target, neg_target)


def example_to_dict(example: Example) -> dict:
    """Example → official JSON object (ProsQA key order when it has a graph)."""
    if not example.has_graph:
        return {"question": example.question, "steps": list(example.steps), "answer": example.answer}
    values = {
        "question": example.question,
        "answer": example.answer,
        "steps": list(example.steps),
        "idx_to_symbol": [str(s) for s in example.idx_to_symbol],
        "edges": [[int(s), int(d)] for s, d in example.edges],
        "root": int(example.root),
        "target": int(example.target),
        "neg_target": int(example.neg_target),
    }
    return {key: values[key] for key in _PROSQA_KEYS}


def load_examples(path: str | os.PathLike) -> list[Example]:
    """The official JSON format: a list of {question, steps, answer[, ProsQA graph fields]};
    gzipped when the name ends in .gz."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of examples, got {_type_name(data)}")
    return [example_from_dict(item, f"{path}: example {i}") for i, item in enumerate(data)]


def save_examples(path: str | os.PathLike, examples: Iterable[Example]) -> None:
    """Write examples in the official JSON format (json.dump defaults, as the reference)."""
    records = [example_to_dict(ex) for ex in examples]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(records, f)


def load_gsm8k_raw(path: str | os.PathLike) -> list[Example]:
    """iCoT's line format `question||<<a=b>> <<c=d>> #### answer`, converted as the
    reference preprocessing does: the question is kept verbatim, the steps are the CoT
    split on single spaces, the answer is the text after the last '##', stripped.
    Blank lines are skipped."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}): {e.reason}") from None
    examples = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if "||" not in line:
            raise ValueError(f"{path}: line {line_number}: missing '||' between question and reasoning")
        reasoning = line.split("||")[1]
        if "####" not in reasoning:
            raise ValueError(f"{path}: line {line_number}: missing '####' before the answer")
        examples.append(
            Example(
                question=line.split("||")[0],
                steps=reasoning.split("##")[0].strip().split(" "),
                answer=line.split("##")[-1].strip(),
            )
        )
    return examples


def prontoqa_from_raw(test_example: dict, where: str = "example") -> Example:
    """One ProntoQA generator record → Example: question + " " + query, chain-of-thought
    sentences joined in consecutive pairs, answer as written ("True"/"False")."""
    if not isinstance(test_example, dict):
        raise ValueError(f"{where}: 'test_example' must be a JSON object, got {_type_name(test_example)}")
    question = _require_str(test_example, "question", where)
    query = _require_str(test_example, "query", where)
    chain = _require_str_list(test_example, "chain_of_thought", where)
    answer = _require_str(test_example, "answer", where)
    steps = [" ".join(chain[i : i + 2]) for i in range(0, len(chain), 2)]
    return Example(question + " " + query, steps, answer)


def load_prontoqa_raw(path: str | os.PathLike) -> list[Example]:
    """Raw ProntoQA generator output (`5hop_0shot_random.json`): a JSON object mapping
    `example_N` to {"test_example": {question, query, chain_of_thought, answer}}, in file order."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of examples, got {_type_name(data)}")
    examples = []
    for i, (key, record) in enumerate(data.items()):
        where = f"{path}: example {i} ({key})"
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {_type_name(record)}")
        examples.append(prontoqa_from_raw(_require(record, "test_example", where), where))
    return examples
