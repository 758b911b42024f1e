"""Generation accuracy by the reference rule, per-example records, and k-sweeps.

    result = evaluate(model, tok, method, examples, max_new_tokens=128, batch_size=64)
    result.accuracy, result.mean_new_tokens, result.write_jsonl("records.jsonl")
    sweep = k_sweep(model, tok, examples, ks=range(7))      # {k: EvalResult}
    sweep = k_sweep(model, tok, examples, thoughts=sweep_thoughts(tok, method))   # with the method's thoughts

The prompt comes from the method at an epoch (`method.prompt_ids`, the reference's
validation prompt), or, given an integer k, is `question <bot> <latent>×k <eot>`.
Decoding is greedy; the whole text (prompt + new tokens) is decoded and scored with
`coconut.scoring.is_correct`, as the reference scores it.

With `comm` (a `coconut.distributed` world of N > 1 processes) the decoding is shared
out: the prompts are grouped into batches as `model.generate` groups them (sorted by
length, batch_size at a time), batch k is decoded by rank k mod N, and every rank gets
all the new tokens back, so the result is the one-process result on every rank.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from coconut.curriculum.sequence import latent_prompt
from coconut.scoring import is_correct
from coconut.thought_spec import ThoughtSpec

FINAL_EPOCH = 10 ** 9   # "after the curriculum": every method's final stage


@dataclass
class Record:
    question: str
    gold: str
    output: str        # the decoded new tokens
    correct: bool
    n_tokens: int      # new tokens generated (eos not counted)
    n_thoughts: int    # <latent> slots in the prompt


@dataclass
class EvalResult:
    accuracy: float
    mean_new_tokens: float
    records: list[Record] = field(default_factory=list)

    def write_jsonl(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for r in self.records:
                f.write(json.dumps(asdict(r)) + "\n")


def _prompts_and_thoughts(tok, method_or_k, examples, epoch) -> tuple[list, ThoughtSpec]:
    if isinstance(method_or_k, (int, np.integer)) and not isinstance(method_or_k, bool):
        if method_or_k < 0:
            raise ValueError(f"the number of thoughts k must be >= 0, got {method_or_k}")
        return [latent_prompt(tok, ex, int(method_or_k)) for ex in examples], tok.thought_spec("continuous")
    method = method_or_k
    e = FINAL_EPOCH if epoch is None else epoch
    return [method.prompt_ids(tok, ex, e) for ex in examples], method.thought_spec(tok)


def sweep_thoughts(tok, method) -> ThoughtSpec:
    """The thoughts a k-sweep of `method` runs: the method's own (with its temperature
    or iterations); continuous ones for a method without thoughts, whose own prompt is
    k = 0."""
    return tok.thought_spec("continuous") if method.thought_mode == "none" else method.thought_spec(tok)


def evaluate(model, tok, method_or_k, examples: Sequence, max_new_tokens: int = 128, batch_size: int = 64,
             *, epoch: int | None = None, thoughts: str | ThoughtSpec | None = None, comm=None,
             on_batch=None) -> EvalResult:
    """Accuracy of greedy generation on `examples`. `method_or_k`: a method (prompt at
    `epoch`'s stage; None: its final stage; thoughts: `method.thought_spec(tok)`) or a
    number of continuous thoughts. `thoughts` overrides them: a ThoughtSpec as it is
    (e.g. a soft method's, for k thoughts), or a mode name with `tok`'s thought tokens
    and the mode's default parameters (e.g. "pause" for pause-as-thought models).
    `comm`: a coconut.distributed world to share the decoding over (every rank calls).
    `on_batch`: called after each batch this process decodes (see `GPT2.generate`)."""
    if len(examples) == 0:
        raise ValueError("evaluate: no examples")
    prompts, spec = _prompts_and_thoughts(tok, method_or_k, examples, epoch)
    if thoughts:
        spec = thoughts if isinstance(thoughts, ThoughtSpec) else tok.thought_spec(thoughts)
    limit = model.config.n_positions
    for i, p in enumerate(prompts):
        if len(p) + max_new_tokens > limit:
            raise ValueError(f"evaluate: example {i}: prompt of {len(p)} tokens + max_new_tokens "
                             f"{max_new_tokens} exceeds n_positions = {limit}")
    was_training = model.training
    model.eval()
    decode = dict(eos_id=tok.eos_id, thoughts=spec, batch_size=batch_size, on_batch=on_batch)
    try:
        if comm is None or comm.size == 1:
            new = model.generate(prompts, max_new_tokens, **decode)
        else:
            new = _generate_sharded(model, prompts, max_new_tokens, comm, decode)
    finally:
        model.training = was_training
    records = []
    for ex, prompt, ids in zip(examples, prompts, new):
        text = tok.decode(list(prompt) + list(ids), ex)
        records.append(Record(question=ex.question, gold=ex.answer, output=tok.decode(ids, ex),
                              correct=is_correct(text, ex.answer), n_tokens=len(ids),
                              n_thoughts=sum(1 for t in prompt if t == tok.latent_id)))
    return EvalResult(accuracy=sum(r.correct for r in records) / len(records),
                      mean_new_tokens=float(np.mean([r.n_tokens for r in records])), records=records)


def k_sweep(model, tok, examples: Sequence, ks: Iterable[int] = range(0, 7), max_new_tokens: int = 128,
            batch_size: int = 64, thoughts: str | ThoughtSpec = "continuous", comm=None) -> dict[int, EvalResult]:
    """One trained model evaluated with k = each of `ks` thoughts at inference (paper, figure 3).
    `thoughts`: a mode name or a whole ThoughtSpec (a method's: `sweep_thoughts(tok, method)`)."""
    return {int(k): evaluate(model, tok, int(k), examples, max_new_tokens, batch_size, thoughts=thoughts,
                             comm=comm)
            for k in ks}


def _generate_sharded(model, prompts, max_new_tokens, comm, decode) -> list[list[int]]:
    """This rank decodes its batches (those `model.generate` would form: prompts sorted by
    length, batch_size at a time; batch k to rank k mod N), then all new ids are gathered.
    The rank's prompts stay in sorted order and only the globally last batch can be
    short, so `model.generate` forms exactly these batches again."""
    bs = decode["batch_size"]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    batches = [order[s:s + bs] for s in range(0, len(order), bs)]
    mine = [i for k in range(comm.rank, len(batches), comm.size) for i in batches[k]]
    out = model.generate([prompts[i] for i in mine], max_new_tokens, **decode) if mine else []
    new: list = [None] * len(prompts)
    for part in comm.allgather(list(zip(mine, out))):
        for i, ids in part:
            new[i] = ids
    return new


# ------------------------------------------------------------------------- decoding


def greedy_reference(model, prompt, max_new_tokens, *, eos_id, thoughts) -> list[int]:
    """Greedy decoding as the reference does it: one example, the whole sequence
    recomputed for every token (no cache). The first token is kept even if it is eos;
    a later eos stops and is not kept. Slow; the yardstick for `model.generate`."""
    ids = list(prompt)
    new: list[int] = []
    for i in range(max_new_tokens):
        logits = model.forward(np.asarray([ids], dtype=np.int64), thoughts=thoughts)
        token = int(np.argmax(logits[0, -1]))
        if i > 0 and token == eos_id:
            break
        new.append(token)
        ids.append(token)
    return new
