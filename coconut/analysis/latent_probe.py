"""The latent value probe on a model (paper, section 5): what does each thought "hold"?

A continuous thought is the final hidden state (after ln_f) that the LM head would read,
so it can be decoded like any position: logits = thought @ wte^T (GPT-2 ties the head to
the embedding; there is no bias), softmax over the vocabulary. A Jacobi thought (PCCoT)
is decoded the same way (its slot's input at the last iteration). A soft thought is a
mixture of token embeddings: its weights, softmax(logits / temperature) at the position
before its slot, are read directly. A node's value is the probability of its name's
token:

- symbolic ProsQA tokenization: node i is token i, so the value is exact;
- GPT-2 BPE: the first token of " name" (the name as it appears mid-sentence); nodes
  whose names share a first token share a value (see `probe.shared_first_tokens`).

    values = probe_values(model, tok, example, k)        # (k, n_nodes)
    summary = probe_dataset(model, tok, examples, k)     # per thought index, averaged
    values = probe_values(model, tok, example, k, thoughts=run.thoughts)   # a method's own thought mode

`thoughts` is a ThoughtSpec whose slots take a computed vector (continuous, soft, jacobi);
None: continuous thoughts.

Attention is causal, so a thought is the same whichever number of thoughts follows it:
the k thoughts of one prompt are also the last thoughts of prompts with 1..k.

Thought t (0-based) is compared with the frontier at depth t + 1 by
`probe.frontier_value_summary`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from coconut.curriculum.sequence import latent_prompt
from coconut.thought_spec import FED_BACK

from .probe import (aggregate_depth_profiles, aggregate_value_summaries, depth_profile, frontier_value_summary,
                    node_values)

__all__ = ["node_tokens", "thought_vectors", "thought_logits", "probe_values", "probe_example", "probe_dataset",
           "depth_dataset", "layer_tables"]


def node_tokens(tok, example) -> dict[int, list[int]]:
    """node id -> the token ids whose first one carries that node's value."""
    if example.idx_to_symbol is None:
        raise ValueError("the latent value probe needs a ProsQA example (idx_to_symbol)")
    return tok.node_name_ids(example)


def _spec(tok, thoughts):
    spec = tok.thought_spec("continuous") if thoughts is None else thoughts
    if spec.mode not in FED_BACK:
        raise ValueError(f"the latent probe reads thoughts fed back ({', '.join(FED_BACK)}), not {spec.mode!r} ones")
    return spec


def _forward(model, tok, example, k: int, thoughts):
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ids = np.asarray([latent_prompt(tok, example, k)], dtype=np.int64)
    logits, vectors = model.forward(ids, thoughts=_spec(tok, thoughts), return_thoughts=True)
    return ids[0], logits[0], vectors[0]


def thought_vectors(model, tok, example, k: int, thoughts=None) -> np.ndarray:
    """(k, C) vectors fed into the slots of `question <bot> <latent>×k <eot>`."""
    return _forward(model, tok, example, k, thoughts)[2]


def thought_logits(model, tok, example, k: int, thoughts=None) -> np.ndarray:
    """(k, V) float64 logits whose softmax is what each thought says about the vocabulary:
    a hidden state (continuous, jacobi) decoded through the tied LM head; for a soft
    thought, the logits at the position before its slot over the temperature, whose
    softmax is the mixture's own weights."""
    spec = _spec(tok, thoughts)
    ids, logits, vectors = _forward(model, tok, example, k, spec)
    if spec.mode == "soft":
        before = np.flatnonzero(ids == spec.latent_id) - 1
        return logits[before].astype(np.float64) / spec.temperature
    return vectors.astype(np.float64) @ np.asarray(model.params["transformer.wte.weight"], dtype=np.float64).T


def probe_values(model, tok, example, k: int, thoughts=None) -> np.ndarray:
    """(k, n_nodes): probability of each node's token under each decoded thought."""
    return node_values(thought_logits(model, tok, example, k, thoughts), node_tokens(tok, example), kind="logits",
                       n_nodes=len(example.idx_to_symbol))


def probe_example(model, tok, example, k: int, mode: str = "shortest", depth_offset: int = 1,
                  thoughts=None) -> dict[int, dict]:
    """`frontier_value_summary` of one example's k thoughts."""
    return frontier_value_summary(probe_values(model, tok, example, k, thoughts), example, mode=mode,
                                  depth_offset=depth_offset)


def probe_dataset(model, tok, examples: Sequence, k: int, mode: str = "shortest",
                  depth_offset: int = 1, thoughts=None) -> dict[int, dict[str, float]]:
    """Per thought index t: the mean over examples of frontier / rest / reachable /
    unreachable / on- and off-path values, frontier ranks and precision (see
    `probe.aggregate_value_summaries`), thought t against the frontier at depth
    t + depth_offset."""
    if len(examples) == 0:
        raise ValueError("probe_dataset: no examples")
    return aggregate_value_summaries([probe_example(model, tok, ex, k, mode, depth_offset, thoughts)
                                      for ex in examples])


def depth_dataset(model, tok, examples: Sequence, k: int, max_depth: int = 6,
                  thoughts=None) -> dict[str, np.ndarray]:
    """`probe.depth_profile` of each example's k thoughts, averaged over the examples."""
    if len(examples) == 0:
        raise ValueError("depth_dataset: no examples")
    return aggregate_depth_profiles([depth_profile(probe_values(model, tok, ex, k, thoughts), ex, max_depth)
                                     for ex in examples])


def layer_tables(model, tok, examples: Sequence, k: int, thoughts=None) -> dict:
    """What `coconut eval --probe` prints, each example's thoughts read once: "reached" and
    "next" (`probe_dataset` with thought t against the layer at distance t - 1 and t) and
    "layers" (`depth_dataset` up to distance k)."""
    if len(examples) == 0:
        raise ValueError("layer_tables: no examples")
    values = [probe_values(model, tok, ex, k, thoughts) for ex in examples]
    return {**{kind: aggregate_value_summaries([frontier_value_summary(v, ex, depth_offset=offset)
                                                for v, ex in zip(values, examples)])
               for kind, offset in (("reached", 0), ("next", 1))},
            "layers": aggregate_depth_profiles([depth_profile(v, ex, k) for v, ex in zip(values, examples)])}
