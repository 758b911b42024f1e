"""The latent value probe on a model (paper, section 5): what does each thought "hold"?

A continuous thought is the final hidden state (after ln_f) that the LM head would read,
so it can be decoded like any position: logits = thought @ wte^T (GPT-2 ties the head to
the embedding; there is no bias), softmax over the vocabulary. A node's value is the
probability of its name's token:

- symbolic ProsQA tokenization: node i is token i, so the value is exact;
- GPT-2 BPE: the first token of " name" (the name as it appears mid-sentence); nodes
  whose names share a first token share a value (see `probe.shared_first_tokens`).

    values = probe_values(model, tok, example, k)        # (k, n_nodes)
    summary = probe_dataset(model, tok, examples, k)     # per thought index, averaged

Attention is causal, so a thought is the same whichever number of thoughts follows it:
the k thoughts of one prompt are also the last thoughts of prompts with 1..k.

Thought t (0-based) is compared with the frontier at depth t + 1 by
`probe.frontier_value_summary`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from coconut.curriculum.sequence import latent_prompt

from .probe import (aggregate_depth_profiles, aggregate_value_summaries, depth_profile, frontier_value_summary,
                    node_values)

__all__ = ["node_tokens", "thought_vectors", "probe_values", "probe_example", "probe_dataset", "depth_dataset"]


def node_tokens(tok, example) -> dict[int, list[int]]:
    """node id -> the token ids whose first one carries that node's value."""
    if example.idx_to_symbol is None:
        raise ValueError("the latent value probe needs a ProsQA example (idx_to_symbol)")
    return tok.node_name_ids(example)


def thought_vectors(model, tok, example, k: int) -> np.ndarray:
    """(k, C) thoughts of `question <bot> <latent>×k <eot>`."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ids = np.asarray([latent_prompt(tok, example, k)], dtype=np.int64)
    _, thoughts = model.forward(ids, thoughts=tok.thought_spec("continuous"), return_thoughts=True)
    return thoughts[0]


def probe_values(model, tok, example, k: int) -> np.ndarray:
    """(k, n_nodes): probability of each node's token under each decoded thought."""
    thoughts = thought_vectors(model, tok, example, k).astype(np.float64)
    logits = thoughts @ np.asarray(model.params["transformer.wte.weight"], dtype=np.float64).T
    return node_values(logits, node_tokens(tok, example), kind="logits", n_nodes=len(example.idx_to_symbol))


def probe_example(model, tok, example, k: int, mode: str = "shortest", depth_offset: int = 1) -> dict[int, dict]:
    """`frontier_value_summary` of one example's k thoughts."""
    return frontier_value_summary(probe_values(model, tok, example, k), example, mode=mode, depth_offset=depth_offset)


def probe_dataset(model, tok, examples: Sequence, k: int, mode: str = "shortest",
                  depth_offset: int = 1) -> dict[int, dict[str, float]]:
    """Per thought index t: the mean over examples of frontier / rest / reachable /
    unreachable / on- and off-path values, frontier ranks and precision (see
    `probe.aggregate_value_summaries`), thought t against the frontier at depth
    t + depth_offset."""
    if len(examples) == 0:
        raise ValueError("probe_dataset: no examples")
    return aggregate_value_summaries([probe_example(model, tok, ex, k, mode, depth_offset) for ex in examples])


def depth_dataset(model, tok, examples: Sequence, k: int, max_depth: int = 6) -> dict[str, np.ndarray]:
    """`probe.depth_profile` of each example's k thoughts, averaged over the examples."""
    if len(examples) == 0:
        raise ValueError("depth_dataset: no examples")
    return aggregate_depth_profiles([depth_profile(probe_values(model, tok, ex, k), ex, max_depth)
                                     for ex in examples])
