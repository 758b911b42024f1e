"""Where do continuous thoughts look? Attention maps of a trained model, in NumPy.

The C core never materialises attention probabilities for Python, so this module has its
own GPT-2 forward (float64, dropout off) over INPUT EMBEDDINGS: token embeddings with
the continuous thoughts (from `model.forward(..., return_thoughts=True)`) written into
the `<latent>` slots. Given the thoughts, the rest of the sequence is one ordinary
forward, so its logits equal the core's (the tests check this within 1e-4) and the
attention probabilities it returns are those the model really used.

    attn = thought_attention(model, tok, example, k)          # (k, T), mean of layers/heads
    spans = edge_token_spans(tok, example)                    # [(start, end, edge)]
    summary = thought_attention_summary(model, tok, example, k)

Row t of `thought_attention` is the attention of the position that COMPUTES thought t:
the `<bot>` position for t = 0, latent slot t - 1 after that (thought t is the final
hidden state there). This is the convention of `attention_stats`.

Token spans of the question's edge sentences:
- symbolic ProsQA tokenization: the question is `src dst |` per edge (edge i spans tokens
  [3i, 3i + 3)), or one token per edge with ProsQAEdgeTokens (edge i is token i), then
  `[Q] a b [R] root`, one non-edge span;
- GPT-2 BPE: `sentences.question_edge_spans` gives character spans; every token's text
  (decoded one token at a time) gives its character range, and a sentence's token span
  is the tokens overlapping its characters. This needs the decoded tokens to rebuild
  the question exactly (true for ASCII text such as ProsQA); otherwise it raises.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from coconut.curriculum.sequence import latent_prompt

from .attention_stats import attention_summary
from .sentences import question_edge_spans

__all__ = ["numpy_forward", "prompt_embeddings", "thought_attention", "edge_token_spans",
           "thought_attention_summary", "attention_dataset"]


def _layernorm(x, w, b, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    # GPT-2's "gelu_new": the tanh approximation
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def numpy_forward(params: dict, config, embeds: np.ndarray, positions: np.ndarray | None = None,
                  want_logits: bool = True):
    """GPT-2 forward of ONE sequence given its input token embeddings.

    ``embeds``: (T, C) rows that replace ``wte[ids]`` (the position embedding is added
    here); ``positions``: (T,) position ids (default 0..T-1). Causal attention, no
    padding. Returns ``(logits (T, V) or None, attn (L, H, T, T), hidden (T, C))`` where
    ``hidden`` is the output of ``ln_f`` and ``attn[l, h, i, j]`` the probability that
    position i gives to position j in layer l, head h."""
    x = np.asarray(embeds, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != config.n_embd:
        raise ValueError(f"embeds must be (T, {config.n_embd}), got {x.shape}")
    T, C = x.shape
    H = config.n_head
    D = C // H
    pos = np.arange(T) if positions is None else np.asarray(positions)
    if pos.max(initial=0) >= config.n_positions:
        raise ValueError(f"position {pos.max()} outside the table of {config.n_positions}")
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = x + p["transformer.wpe.weight"][pos]
    causal = np.tril(np.ones((T, T), dtype=bool))
    maps = np.zeros((config.n_layer, H, T, T))
    for layer in range(config.n_layer):
        h = f"transformer.h.{layer}."
        a = _layernorm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"])
        qkv = a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]            # (T, 3C)
        q, k, v = (qkv[:, i * C:(i + 1) * C].reshape(T, H, D).transpose(1, 0, 2) for i in range(3))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(D)                                # (H, T, T)
        scores = np.where(causal, scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        maps[layer] = probs
        y = (probs @ v).transpose(1, 0, 2).reshape(T, C)
        x = x + y @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        a = _layernorm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"])
        m = _gelu(a @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    hidden = _layernorm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"])
    logits = hidden @ p["transformer.wte.weight"].T if want_logits else None
    return logits, maps, hidden


def prompt_embeddings(model, tok, ids: Sequence[int], thoughts: np.ndarray | None = None) -> np.ndarray:
    """(T, C) input embeddings of ``ids``: ``wte`` rows, with the rows of the
    ``<latent>`` slots replaced by ``thoughts`` (default: the model's own continuous
    thoughts for this sequence)."""
    ids = [int(t) for t in ids]
    if thoughts is None:
        _, per_example = model.forward(np.asarray([ids], dtype=np.int64), thoughts=tok.thought_spec("continuous"),
                                       return_thoughts=True)
        thoughts = per_example[0]
    slots = [i for i, t in enumerate(ids) if t == tok.latent_id]
    thoughts = np.asarray(thoughts, dtype=np.float64)
    if thoughts.shape[0] != len(slots):
        raise ValueError(f"{len(slots)} latent slots but {thoughts.shape[0]} thoughts")
    emb = np.asarray(model.params["transformer.wte.weight"], dtype=np.float64)[ids]
    if slots:
        emb[slots] = thoughts
    return emb


def _reduce(maps: np.ndarray, rows: list[int], layers, heads) -> np.ndarray:
    sel = maps[:, :, rows, :]                                  # (L, H, n, T)
    if layers is not None:
        sel = sel[list(np.atleast_1d(layers))]
    if heads is not None:
        sel = sel[:, list(np.atleast_1d(heads))]
    return sel


def thought_attention(model, tok, example, k: int, *, layers=None, heads=None, per_layer: bool = False):
    """Attention of the positions computing each of the k thoughts over the prompt
    ``question <bot> <latent>×k <eot>``.

    Returns (k, T), the mean over the chosen ``layers`` and ``heads`` (default: all);
    with ``per_layer`` (L', k, T), the mean over heads per layer. T = prompt length."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ids = latent_prompt(tok, example, k)
    emb = prompt_embeddings(model, tok, ids)
    _, maps, _ = numpy_forward(model.params, model.config, emb, want_logits=False)
    bot = ids.index(tok.bot_id)
    rows = list(range(bot, bot + k))       # <bot>, latent 1, ..., latent k-1
    sel = _reduce(maps, rows, layers, heads)
    if per_layer:
        return sel.mean(axis=1)
    return sel.mean(axis=(0, 1))


def _symbolic_spans(tok, example):
    q = tok.question_ids(example)
    spans = []
    i = 0
    while i < len(q):
        edge = tok.edge_of(q[i])
        if edge is not None:                  # one token per edge (ProsQAEdgeTokens)
            spans.append((i, i + 1, edge))
            i += 1
        elif i + 2 < len(q) and q[i + 2] == tok.sep_id and q[i] < tok.max_nodes and q[i + 1] < tok.max_nodes:
            spans.append((i, i + 3, (int(q[i]), int(q[i + 1]))))
            i += 3
        else:
            break
    if i < len(q):
        spans.append((i, len(q), None))
    return spans


def _bpe_spans(tok, example):
    q_ids = tok.question_ids(example)
    pieces = [tok.decode([t]) for t in q_ids]
    text = example.question + "\n"
    if "".join(pieces) != text:
        raise ValueError("the question's tokens do not decode one by one to its text "
                         "(non-ASCII text?): token spans cannot be derived")
    starts = np.cumsum([0] + [len(p) for p in pieces])
    spans = []
    for s, e, edge in question_edge_spans(example):
        toks = [i for i in range(len(q_ids)) if starts[i] < e and starts[i + 1] > s]
        if toks:
            spans.append((toks[0], toks[-1] + 1, edge))
    return spans


def edge_token_spans(tok, example) -> list:
    """Token spans ``(start, end, edge)`` (end exclusive, positions in the prompt, which
    starts with the question) of the question's sentences; ``edge`` None for a
    sentence that states no edge."""
    if tok.kind in ("prosqa_symbolic", "prosqa_edge_tokens"):
        return _symbolic_spans(tok, example)
    if tok.kind == "gpt2":
        return _bpe_spans(tok, example)
    raise ValueError(f"edge spans are defined for the ProsQA symbolic and the GPT-2 BPE tokenizations, "
                     f"not {type(tok).__name__}")


def thought_attention_summary(model, tok, example, k: int, *, layers=None, heads=None, depth_offset: int = 1,
                              mode: str = "shortest") -> dict:
    """`attention_stats.attention_summary` of one example's k thoughts."""
    attn = thought_attention(model, tok, example, k, layers=layers, heads=heads)
    return attention_summary(attn, edge_token_spans(tok, example), example, depth_offset=depth_offset, mode=mode)


def attention_dataset(model, tok, examples: Sequence, k: int, **kwargs) -> dict[str, np.ndarray]:
    """Mean over examples (NaN ignored) of every array of `thought_attention_summary`,
    each of shape (k,)."""
    if len(examples) == 0:
        raise ValueError("attention_dataset: no examples")
    summaries = [thought_attention_summary(model, tok, ex, k, **kwargs) for ex in examples]
    return {key: np.nanmean(np.stack([s[key] for s in summaries]), axis=0) for key in summaries[0]}
