"""Independent PyTorch re-enactment of the reference Coconut algorithm.

This helper module (not a test file) is the ground truth our tests compare the C core
against.  It re-enacts, on a ``transformers.GPT2LMHeadModel`` called ``hf``:

* ``coconut_forward``   -- the multi-pass continuous-thought forward (reference
  ``Coconut.forward`` in coconut.py),
* ``reference_collate`` -- the batching collator (reference ``MyCollator`` in dataset.py),
* ``reference_generate``-- greedy decoding for one example (reference
  ``Coconut.generate`` in coconut.py).

Facts taken from the reference code (its coconut.py and dataset.py):

* Pass ranges: ``[0, f)`` where ``f`` is the smallest ``<latent>`` column of the whole
  batch, then one column per pass (``[f+j-1, f+j)``) for passes ``1 .. n-1`` where ``n``
  is the largest number of latents of any example, then a final pass
  ``[f+n-1, L)``.  Without latents there is a single pass ``[0, L)``.
* Every pass gets ``inputs_embeds`` of its range, ``position_ids`` of its range, the
  attention mask of ALL positions ``[:, :end]`` (the first pass slices ``[start:end]``,
  identical because ``start == 0``), the cache of positions ``[0, start)`` and
  ``output_hidden_states=True``.
* After pass ``j`` (0-based), every example with more than ``j`` latents gets its
  ``j``-th latent embedding (column ``p``) replaced by ``hidden_states[-1]`` at ``p - 1``
  (the output of ``ln_f``), without detach.  Examples with fewer latents are left alone:
  their later "latent columns" hold ordinary tokens computed one column per pass.
* Loss: logits of all passes concatenated along the sequence, shift by one, mean
  cross-entropy over labels != -100.
* Generation: the prompt goes through the multi-pass forward with an all-ones attention
  mask and ``position_ids = arange(len)``; the first new token is the argmax of the last
  logits and is appended unconditionally (even if it is eos); every further token comes
  from a full forward, without cache, attention mask or position ids (so default
  absolute positions), over all input embeddings (thoughts included) plus the embeddings
  of the new tokens; a token equal to eos stops decoding and is NOT appended; at most
  ``max_new_tokens`` tokens are produced.  (The reference returns prompt + new tokens;
  ``reference_generate`` returns only the new tokens.)

Where the reference would silently index the wrong position or crash (a batch whose
first latents are not aligned in one column, a latent in column 0), this module raises
``ValueError`` instead.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = -100

__all__ = [
    "IGNORE_INDEX",
    "coconut_forward",
    "reference_collate",
    "reference_generate",
    "crop_cache",
    "cache_length",
]


# --------------------------------------------------------------------------------------
# KV cache helpers (transformers 5.x DynamicCache with .layers; legacy tuples tolerated)
# --------------------------------------------------------------------------------------


def cache_length(cache) -> int:
    """Number of cached positions."""
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return int(cache[0][0].shape[-2])


def crop_cache(cache, length: int):
    """Keep only the first ``length`` positions of every layer's keys and values.

    Done by slicing (no in-place op on the tensors), so gradients keep flowing into the
    passes that produced them.  Returns the (possibly same) cache object.
    """
    if cache is None:
        return None
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            layer.keys = layer.keys[:, :, :length, :]
            layer.values = layer.values[:, :, :length, :]
        got = cache_length(cache)
        if got != length:
            raise RuntimeError(f"cache crop failed: wanted {length} positions, have {got}")
        return cache
    # legacy tuple-of-tuples format
    return tuple((k[:, :, :length, :], v[:, :, :length, :]) for k, v in cache)


# --------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------


def _shifted_loss(logits: torch.Tensor, labels: Optional[torch.Tensor]):
    if labels is None:
        return None
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1).to(logits.device)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)


def _latent_columns(input_ids: torch.Tensor, latent_id: int) -> List[List[int]]:
    rows = (input_ids == latent_id).cpu().numpy()
    return [list(np.nonzero(r)[0].tolist()) for r in rows]


def _replace_rows(embeds: torch.Tensor, fills: Dict[int, tuple]) -> torch.Tensor:
    """Return a new (B, L, D) tensor equal to ``embeds`` except that for each batch index
    ``b`` in ``fills`` (value ``(col, vec)``) the row ``embeds[b, col]`` is ``vec``.
    Built by concatenation: nothing autograd needs is modified in place."""
    rows = []
    for b in range(embeds.shape[0]):
        if b in fills:
            col, vec = fills[b]
            seq = embeds[b]
            rows.append(torch.cat([seq[:col], vec.unsqueeze(0), seq[col + 1 :]], dim=0))
        else:
            rows.append(embeds[b])
    return torch.stack(rows, dim=0)


def _run_pass(hf, embeds, attention_mask, position_ids, start, end, cache):
    if cache is not None:
        cache = crop_cache(cache, start)
    elif start != 0:
        raise RuntimeError("a pass that does not start at 0 needs a cache")
    out = hf(
        inputs_embeds=embeds[:, start:end, :],
        attention_mask=attention_mask[:, :end],
        position_ids=position_ids[:, start:end],
        past_key_values=cache,
        use_cache=True,
        output_hidden_states=True,
    )
    return out


def _coconut_forward_impl(
    hf,
    input_ids,
    attention_mask,
    position_ids,
    labels,
    latent_id,
    mode="continuous",
    detach_feedback=False,
):
    if mode not in ("continuous", "pause", "none"):
        raise ValueError(f"unknown mode {mode!r}")
    input_ids = torch.as_tensor(input_ids, dtype=torch.long)
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    bsz, seqlen = input_ids.shape
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = torch.as_tensor(attention_mask, dtype=torch.long).reshape(bsz, seqlen)
    if position_ids is None:
        position_ids = torch.arange(seqlen, dtype=torch.long).unsqueeze(0).expand(bsz, -1)
    position_ids = torch.as_tensor(position_ids, dtype=torch.long).reshape(bsz, seqlen)
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(bsz, seqlen)

    embeds = hf.get_input_embeddings()(input_ids)
    thoughts: List[List[np.ndarray]] = [[] for _ in range(bsz)]

    latents = _latent_columns(input_ids, latent_id) if mode == "continuous" else [[] for _ in range(bsz)]
    n_max = max(len(l) for l in latents)

    if n_max == 0:
        out = _run_pass(hf, embeds, attention_mask, position_ids, 0, seqlen, None)
        logits = out.logits
        return _shifted_loss(logits, labels), logits, thoughts, embeds

    first = min(l[0] for l in latents if l)
    if first == 0:
        raise ValueError("a <latent> in column 0 has no preceding hidden state")

    logits_parts = []
    cache = None
    start, end = 0, first
    for j in range(n_max):
        out = _run_pass(hf, embeds, attention_mask, position_ids, start, end, cache)
        logits_parts.append(out.logits)
        cache = out.past_key_values
        last_hidden = out.hidden_states[-1]  # after ln_f (checked in the tests)

        fills = {}
        for b, cols in enumerate(latents):
            if len(cols) <= j:
                continue
            p = cols[j]
            # the source position p-1 must have been computed in THIS pass and the
            # target p must not have been computed yet; true for collated batches.
            if not (start <= p - 1 < end) or p < end:
                raise ValueError(
                    f"example {b}: latent {j} at column {p} is not aligned with pass "
                    f"range [{start}, {end}); batch the examples with reference_collate"
                )
            vec = last_hidden[b, p - 1 - start, :]
            if detach_feedback:
                vec = vec.detach()
            fills[b] = (p, vec)
            thoughts[b].append(vec.detach().cpu().numpy().copy())
        embeds = _replace_rows(embeds, fills)

        start, end = end, (seqlen if j + 1 >= n_max else end + 1)

    out = _run_pass(hf, embeds, attention_mask, position_ids, start, end, cache)
    logits_parts.append(out.logits)
    logits = torch.cat(logits_parts, dim=1)
    if logits.shape[1] != seqlen:
        raise RuntimeError("passes did not cover the sequence exactly once")
    return _shifted_loss(logits, labels), logits, thoughts, embeds


def coconut_forward(
    hf,
    input_ids,
    attention_mask,
    position_ids,
    labels,
    latent_id: int,
    mode: str = "continuous",
    detach_feedback: bool = False,
):
    """Re-enactment of the reference ``Coconut.forward``.

    Args:
        hf: a ``GPT2LMHeadModel`` (any dtype; put it in eval mode for deterministic runs).
        input_ids, attention_mask, position_ids, labels: (B, L) integer tensors (or
            nested lists).  ``attention_mask``/``position_ids`` may be None (all ones /
            ``arange``); ``labels`` may be None (then ``loss`` is None).
        latent_id: id of the ``<latent>`` token.
        mode: ``"continuous"`` (thought feedback, multi-pass), ``"pause"`` or ``"none"``
            (one ordinary forward; ``<latent>`` keeps its learned embedding).
        detach_feedback: detach the fed-back hidden states (NOT the reference; only to
            show that the gradient through the thoughts matters).

    Returns:
        ``(loss, logits, thoughts)``: scalar mean cross-entropy over labels != -100 of
        the shifted sequence, logits (B, L, V) of all passes concatenated, and per
        example the list of fed-back vectors (numpy arrays of hf's dtype) in order.
    """
    loss, logits, thoughts, _ = _coconut_forward_impl(
        hf, input_ids, attention_mask, position_ids, labels, latent_id, mode, detach_feedback
    )
    return loss, logits, thoughts


# --------------------------------------------------------------------------------------
# collator
# --------------------------------------------------------------------------------------


def reference_collate(
    examples: Sequence[dict],
    latent_id: int,
    pad_id: int = 50256,
    label_pad_id: int = IGNORE_INDEX,
) -> Dict[str, torch.Tensor]:
    """Re-enactment of the reference ``MyCollator``.

    ``examples``: dicts with ``input_ids`` (list of int) and optionally ``labels``,
    ``attention_mask`` (default all ones) and ``position_ids`` (default ``range(len)``).
    The inputs are not modified.

    If at least one example contains ``latent_id``: each example WITH latents is
    left-padded by ``max(first latent) - its first latent`` pads (id ``pad_id``, mask 0,
    label ``label_pad_id``) and gets position ids ``[0]*n_pad + range(len)`` (its own
    position ids are discarded); an example WITHOUT latents gets 0 left pads and
    position ids ``range(len)``.  If no example has latents, nothing is left-padded and
    each example keeps its own (or default) position ids.

    Then everything is right-padded to the longest: input ids with ``pad_id``,
    attention mask 0, labels ``label_pad_id``, position ids 0.

    Returns a dict of LongTensors ``input_ids``, ``attention_mask``, ``position_ids``
    and, when the examples have labels, ``labels``.
    """
    feats = []
    for ex in examples:
        ids = [int(t) for t in ex["input_ids"]]
        f = {
            "input_ids": ids,
            "attention_mask": [int(m) for m in ex.get("attention_mask", [1] * len(ids))],
            "position_ids": [int(p) for p in ex.get("position_ids", range(len(ids)))],
        }
        if ex.get("labels") is not None:
            f["labels"] = [int(t) for t in ex["labels"]]
        for k in ("attention_mask", "position_ids", "labels"):
            if k in f and len(f[k]) != len(ids):
                raise ValueError(f"{k} length differs from input_ids length")
        feats.append(f)

    has_labels = [("labels" in f) for f in feats]
    if any(has_labels) and not all(has_labels):
        raise ValueError("either all or none of the examples must have labels")

    firsts = [f["input_ids"].index(latent_id) for f in feats if latent_id in f["input_ids"]]
    if firsts:
        target = max(firsts)
        for f in feats:
            ids = f["input_ids"]
            n = target - ids.index(latent_id) if latent_id in ids else 0
            f["position_ids"] = [0] * n + list(range(len(ids)))
            f["input_ids"] = [pad_id] * n + ids
            f["attention_mask"] = [0] * n + f["attention_mask"]
            if "labels" in f:
                f["labels"] = [label_pad_id] * n + f["labels"]

    width = max(len(f["input_ids"]) for f in feats)

    def right(key, value):
        return torch.tensor(
            [f[key] + [value] * (width - len(f[key])) for f in feats], dtype=torch.long
        )

    batch = {
        "input_ids": right("input_ids", pad_id),
        "attention_mask": right("attention_mask", 0),
        "position_ids": right("position_ids", 0),
    }
    if all(has_labels):
        batch["labels"] = right("labels", label_pad_id)
    return batch


# --------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------


@torch.no_grad()
def reference_generate(
    hf,
    prompt_ids,
    latent_id: int,
    max_new_tokens: int,
    eos_id: int,
    mode: str = "continuous",
) -> List[int]:
    """Re-enactment of the reference ``Coconut.generate`` for one example.

    ``prompt_ids``: list/1-D tensor (question, <bot>, <latent>*k, <eot>).  ``mode``
    selects how the prompt is run (``"continuous"`` feeds the thoughts back, as the
    reference; ``"pause"``/``"none"`` keep the ``<latent>`` embeddings).  Returns the
    new token ids only (the reference returns prompt + new ids): the first token is
    kept even if it is ``eos_id``; afterwards decoding stops at ``eos_id``, which is
    not included; at most ``max_new_tokens`` ids.
    """
    ids = torch.as_tensor(prompt_ids, dtype=torch.long).reshape(1, -1)
    length = ids.shape[1]
    _, logits, _, embeds = _coconut_forward_impl(
        hf,
        ids,
        torch.ones_like(ids),
        torch.arange(length, dtype=torch.long).reshape(1, -1),
        None,
        latent_id,
        mode,
    )
    wte = hf.get_input_embeddings()
    new: List[int] = []
    if max_new_tokens <= 0:
        return new
    tok = int(torch.argmax(logits[0, -1]).item())
    new.append(tok)
    seq = torch.cat([embeds, wte(torch.tensor([[tok]], dtype=torch.long))], dim=1)
    for _ in range(max_new_tokens - 1):
        out = hf(inputs_embeds=seq, use_cache=False)
        tok = int(torch.argmax(out.logits[0, -1]).item())
        if tok == eos_id:
            break
        new.append(tok)
        seq = torch.cat([seq, wte(torch.tensor([[tok]], dtype=torch.long))], dim=1)
    return new
