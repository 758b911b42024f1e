"""Independent PyTorch re-enactments of two more thought modes on a
``transformers.GPT2LMHeadModel`` ``hf``: soft thoughts and Jacobi (PCCoT) thoughts. The
ground truth the C core's soft and jacobi modes are tested against.

No key/value cache and no passes: every step is one full forward of the whole sequence
(attention mask and position ids as given), and a slot's input is replaced by a
``torch.where`` selection (nothing modified in place), so autograd sees the whole
computation.
A causal model makes that equal to the cached schedule the core runs.

* ``soft_forward``: thought j (0-based) of every example is filled after the j-th full
  forward: its input becomes ``softmax(lm_head(h) / temperature) @ wte``, h the final
  hidden state (after ln_f) of the position before the slot; a last forward gives the
  logits.
* ``jacobi_forward``: every slot starts as the ``<latent>`` token's embedding; each of
  ``iterations`` full forwards then gives every slot at once the final hidden state of
  the position before it (the first slot reads ``<bot>``); a last forward with those
  inputs gives the logits. This is PCCoT's schedule (whyNLP/PCCoT,
  models/modeling_gpt2.py, ``PCCoTGPT2LMHeadModel.forward``): a first forward over the
  prefix with the latent tokens' embeddings gives the slots their first fed-back
  inputs, ``num_iterations`` passes over the slot block follow, each feeding the block's
  shifted outputs to the next, and the answer runs against the cache of the last of
  them, so the last update of the inputs is never used: ``iterations`` = its
  ``num_iterations`` (and ``prj`` the identity, its ``use_projection=False``).
* ``thought_generate``: greedy decoding of one prompt as the reference's
  ``Coconut.generate`` (see torch_coconut.reference_generate), with the prompt's slots
  filled by one of these rules.
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = -100

__all__ = ["soft_forward", "jacobi_forward", "thought_generate"]


def _tensors(input_ids, attention_mask, position_ids, labels):
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    B, L = ids.shape
    mask = torch.ones_like(ids) if attention_mask is None else torch.as_tensor(attention_mask).long().reshape(B, L)
    pos = (torch.arange(L).expand(B, L) if position_ids is None
           else torch.as_tensor(position_ids).long().reshape(B, L))
    lab = None if labels is None else torch.as_tensor(labels).long().reshape(B, L)
    return ids, mask, pos, lab


def _final_hidden(hf, embeds, mask, pos):
    """The final hidden states (after ln_f) of a full forward."""
    return hf.transformer(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).last_hidden_state


def _shift_right(h):
    """out[:, p] = h[:, p-1] (column 0 gets zeros: no slot lives there)."""
    return torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)


def _slots(ids, latent_id):
    is_slot = ids == latent_id
    if is_slot[:, 0].any():
        raise ValueError("a <latent> in column 0 has no position before it")
    return is_slot


def _fed(embeds, is_slot) -> List[np.ndarray]:
    return [embeds[b][is_slot[b]].detach().cpu().numpy().copy() for b in range(embeds.shape[0])]


def _logits_and_loss(hf, embeds, mask, pos, labels):
    h = _final_hidden(hf, embeds, mask, pos)
    logits = hf.lm_head(h)
    loss = None
    if labels is not None:
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=IGNORE_INDEX)
    return loss, logits


def soft_inputs(hf, ids, mask, pos, latent_id, temperature):
    """The input embeddings with every slot holding its soft thought."""
    wte = hf.get_input_embeddings().weight
    embeds = wte[ids]
    is_slot = _slots(ids, latent_id)
    order = torch.cumsum(is_slot.long(), dim=1) - 1       # a slot's index among its example's
    for j in range(int(is_slot.sum(dim=1).max().item()) if is_slot.any() else 0):
        h = _shift_right(_final_hidden(hf, embeds, mask, pos))
        probs = torch.softmax(hf.lm_head(h) / temperature, dim=-1)
        mixture = probs @ wte
        embeds = torch.where((is_slot & (order == j)).unsqueeze(-1), mixture, embeds)
    return embeds, is_slot


def jacobi_inputs(hf, ids, mask, pos, latent_id, iterations):
    """The input embeddings with every slot holding its last Jacobi iteration's input."""
    embeds = hf.get_input_embeddings()(ids)               # iteration 0: the <latent> embedding
    is_slot = _slots(ids, latent_id)
    if is_slot.any():
        for _ in range(iterations):
            h = _shift_right(_final_hidden(hf, embeds, mask, pos))
            embeds = torch.where(is_slot.unsqueeze(-1), h, embeds)
    return embeds, is_slot


def soft_forward(hf, input_ids, attention_mask, position_ids, labels, latent_id: int, temperature: float = 1.0):
    """(loss, logits, per example the (n, C) soft thoughts fed into its slots)."""
    ids, mask, pos, lab = _tensors(input_ids, attention_mask, position_ids, labels)
    embeds, is_slot = soft_inputs(hf, ids, mask, pos, latent_id, temperature)
    loss, logits = _logits_and_loss(hf, embeds, mask, pos, lab)
    return loss, logits, _fed(embeds, is_slot)


def jacobi_forward(hf, input_ids, attention_mask, position_ids, labels, latent_id: int, iterations: int = 3):
    """(loss, logits, per example the (n, C) inputs of its slots in the last iteration)."""
    ids, mask, pos, lab = _tensors(input_ids, attention_mask, position_ids, labels)
    embeds, is_slot = jacobi_inputs(hf, ids, mask, pos, latent_id, iterations)
    loss, logits = _logits_and_loss(hf, embeds, mask, pos, lab)
    return loss, logits, _fed(embeds, is_slot)


@torch.no_grad()
def thought_generate(hf, prompt_ids, latent_id: int, max_new_tokens: int, eos_id: int, mode: str,
                     temperature: float = 1.0, iterations: int = 3) -> List[int]:
    """New ids of one prompt: the first is kept even if it is eos, a later eos ends
    decoding and is not kept; each step is a full forward without cache."""
    ids, mask, pos, _ = _tensors(prompt_ids, None, None, None)
    if mode == "soft":
        embeds, _ = soft_inputs(hf, ids, mask, pos, latent_id, temperature)
    elif mode == "jacobi":
        embeds, _ = jacobi_inputs(hf, ids, mask, pos, latent_id, iterations)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    wte = hf.get_input_embeddings()
    new: List[int] = []
    for step in range(max_new_tokens):
        tok = int(torch.argmax(hf(inputs_embeds=embeds).logits[0, -1]).item())
        if step > 0 and tok == eos_id:
            break
        new.append(tok)
        embeds = torch.cat([embeds, wte(torch.tensor([[tok]]))], dim=1)
    return new
