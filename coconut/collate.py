"""Batch layout, as the reference collator builds it.

    xxxxxxxxxx<latent><latent>xxxxx--
    -----xxxxx<latent>xxxxxxxx-------      x token, - pad
    ---xxxxxxx<latent><latent>xxxxxxx

1. If any sequence of the batch holds a `<latent>`, every sequence that holds one is
   left-padded so that its first `<latent>` lands in the same column (the latest first
   latent of the batch); sequences without a latent get no left pads. Left pads: pad
   id, attention mask 0, label -100, position id 0. Position ids of the real tokens
   then run 0, 1, 2, ... from the first real token, so absolute positions are those of
   the unpadded sequence. Aligned first thoughts let the continuous-thought passes
   advance one column at a time for the whole batch.
2. Then every row is right-padded to the longest: pad id, mask 0, label -100 and
   position id 0 (the reference pads position ids with 0 on the right too).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from coconut.curriculum.sequence import IGNORE


@dataclass
class Batch:
    input_ids: np.ndarray       # (B, T) int64
    attention_mask: np.ndarray  # (B, T) int64, 1 on real tokens
    position_ids: np.ndarray    # (B, T) int64
    labels: np.ndarray          # (B, T) int64, -100 where not trained

    @property
    def shape(self) -> tuple[int, int]:
        return self.input_ids.shape


def _ids_and_labels(item):
    if hasattr(item, "input_ids"):
        ids = list(item.input_ids)
        labels = getattr(item, "labels", None)
    else:  # a bare list of ids, e.g. a generation prompt
        ids, labels = list(item), None
    labels = [IGNORE] * len(ids) if labels is None else list(labels)
    if len(labels) != len(ids):
        raise ValueError(f"labels ({len(labels)}) and input_ids ({len(ids)}) differ in length")
    return ids, labels


def collate(sequences: Sequence, pad_id: int, latent_id: int | None = None) -> Batch:
    """Lay out `sequences` (TrainingSequence-like objects with input_ids and labels, or
    plain id lists, whose labels are then all -100) as one batch. `latent_id` None:
    no alignment, only right padding."""
    if len(sequences) == 0:
        raise ValueError("collate needs at least one sequence")
    rows = [_ids_and_labels(s) for s in sequences]
    if any(len(ids) == 0 for ids, _ in rows):
        raise ValueError("collate got an empty sequence")

    first_latent = [ids.index(latent_id) if latent_id is not None and latent_id in ids else None
                    for ids, _ in rows]
    present = [f for f in first_latent if f is not None]
    column = max(present) if present else 0
    left = [0 if f is None else column - f for f in first_latent]

    T = max(lp + len(ids) for lp, (ids, _) in zip(left, rows))
    B = len(rows)
    input_ids = np.full((B, T), pad_id, dtype=np.int64)
    attention_mask = np.zeros((B, T), dtype=np.int64)
    position_ids = np.zeros((B, T), dtype=np.int64)
    labels = np.full((B, T), IGNORE, dtype=np.int64)
    for b, (lp, (ids, lab)) in enumerate(zip(left, rows)):
        end = lp + len(ids)
        input_ids[b, lp:end] = ids
        attention_mask[b, lp:end] = 1
        position_ids[b, lp:end] = np.arange(len(ids))
        labels[b, lp:end] = lab
    return Batch(input_ids, attention_mask, position_ids, labels)
