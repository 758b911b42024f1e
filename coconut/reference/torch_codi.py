"""Independent PyTorch re-enactment of what CODI (Shen et al. 2025, zhenyi4/codi) asks
of the core, on a ``transformers.GPT2LMHeadModel`` ``hf``: the ground truth for the
core's thought projection and its loss on hidden states (tests/test_thought_projection.py,
tests/test_hidden_loss.py).

Facts taken from zhenyi4/codi (src/model.py):

* The projection (``CODI.__init__``, ``use_prj``): ``nn.Sequential(nn.Dropout(prj_dropout),
  nn.Linear(dim, prj_dim), nn.GELU(), nn.Linear(prj_dim, dim))`` plus ``nn.LayerNorm(dim)``
  unless ``prj_no_ln``; ``nn.GELU()`` is the exact (erf) GELU, the LayerNorm's eps 1e-5.
  Its scripts train with ``prj_dropout 0.0``, so no dropout here.
* A continuous thought's input (``CODI.forward``): ``outputs.hidden_states[-1][:, -1]``
  of the position before it (the ln_f output in GPT-2), through the projection.
* The hidden states distilled are ``outputs.hidden_states``: all n_layer + 1 entries
  (embeddings first, the last after ln_f), at one cell per example.

``codi_forward`` runs no key/value cache and no passes: thought j (0-based) of every
example is filled after the j-th full forward of the whole sequence, from that
forward's final hidden state at the position before it (a ``torch.where`` selection,
nothing in place), and a last full forward gives the logits, the loss and the hidden
states. A causal model makes that equal to the cached schedule the core runs. With
``iterations`` the slots are Jacobi thoughts instead (torch_thought_modes.jacobi_inputs),
as PCCoT's student (whyNLP/PCCoT, models/modeling_gpt2.py) fills them under CODI's losses.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from coconut.reference.torch_thought_modes import jacobi_inputs

IGNORE_INDEX = -100

__all__ = ["projection_twin", "codi_forward"]


def projection_twin(model) -> torch.nn.Sequential:
    """CODI's projection (Linear, GELU, Linear, LayerNorm) holding a coconut.GPT2's
    ``thought_projection.*`` tensors, as torch modules (fp32)."""
    C, H = model.config.n_embd, model.config.thought_projection
    prj = torch.nn.Sequential()
    prj.add_module("fc1", torch.nn.Linear(C, H))
    prj.add_module("gelu", torch.nn.GELU())
    prj.add_module("fc2", torch.nn.Linear(H, C))
    prj.add_module("ln", torch.nn.LayerNorm(C))
    prj.load_state_dict({k[len("thought_projection."):]: torch.from_numpy(v.copy())
                         for k, v in model.params.items() if k.startswith("thought_projection.")})
    return prj


def codi_forward(hf, prj, input_ids, attention_mask, position_ids, labels, latent_id: int, cells=None,
                 iterations: int = 0):
    """(loss, logits, hidden) of continuous thoughts whose fed-back state goes through
    ``prj`` (None: the identity, Coconut's rule). ``cells`` (n, 2) (example, position)
    pairs: ``hidden`` (n, n_layer + 1, C), their ``output_hidden_states`` in the last
    forward (None without cells). ``iterations`` >= 1: Jacobi thoughts (``prj`` None)."""
    ids = torch.as_tensor(np.asarray(input_ids), dtype=torch.long)
    B, T = ids.shape
    mask = torch.as_tensor(np.asarray(attention_mask), dtype=torch.long)
    pos = torch.as_tensor(np.asarray(position_ids), dtype=torch.long)
    embeds = hf.get_input_embeddings()(ids)
    is_slot = ids == latent_id
    if is_slot[:, 0].any():
        raise ValueError("a <latent> in column 0 has no position before it")
    order = torch.cumsum(is_slot.long(), dim=1) - 1          # a slot's index among its example's
    n_max = int(is_slot.sum(dim=1).max().item())
    if iterations:
        if prj is not None:
            raise ValueError("Jacobi thoughts take no projection")
        embeds, _ = jacobi_inputs(hf, ids, mask, pos, latent_id, iterations)
    else:
        for j in range(n_max):
            h = hf.transformer(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).last_hidden_state
            fed = h if prj is None else prj(h)
            fed = torch.cat([torch.zeros_like(fed[:, :1]), fed[:, :-1]], dim=1)   # position p reads p-1
            embeds = torch.where((is_slot & (order == j)).unsqueeze(-1), fed, embeds)
    out = hf.transformer(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, output_hidden_states=True)
    logits = hf.lm_head(out.last_hidden_state)
    loss = None
    if labels is not None:
        lab = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1),
                               ignore_index=IGNORE_INDEX)
    hidden = None
    if cells is not None:
        cells = np.asarray(cells)
        b, t = torch.as_tensor(cells[:, 0]), torch.as_tensor(cells[:, 1])
        hidden = torch.stack([hs[b, t] for hs in out.hidden_states], dim=1)
    return loss, logits, hidden
