"""Inference on the ProsQA validation questions with continuous thoughts: our batched
key/value-cache decoding (`model.generate`, C core) against the reference's decoding
(PyTorch + transformers GPT-2, one example at a time, the whole sequence recomputed for
every new token: coconut/reference/torch_coconut.reference_generate), same weights, same machine,
same threads.

Random weights rarely produce eos, so both sides generate a fixed `--max-new-tokens`
(16 by default, about the paper's mean output length of Coconut on ProsQA); on the
examples both sides decode, the tokens are compared (they must be equal).

    python benchmarks/inference.py [--val-file PATH] [--shapes small,gpt2]
        [--n-ours 300] [--n-ref 10] [--n-ours-gpt2 32] [--n-ref-gpt2 3]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from common import set_threads, write_record, SHAPES

import coconut
from coconut.curriculum.sequence import latent_prompt
from coconut.data import load_examples, official_path
from coconut.tokenizer.text import TextTokenization

HERE = os.path.dirname(os.path.abspath(__file__))


def build(shape, tok, seed=0):
    cfg = coconut.GPT2Config(vocab_size=tok.vocab_size, n_positions=1024, dropout=0.0, **SHAPES[shape])
    model = coconut.GPT2(cfg, seed=seed).eval()
    model.thoughts = tok.thought_spec("continuous")
    return model


def time_ours(model, prompts, max_new, eos, batch_size):
    model.generate(prompts[:2], max_new, eos_id=eos, batch_size=batch_size)   # warm-up: buffers, threads
    start = time.perf_counter()
    out = model.generate(prompts, max_new, eos_id=eos, batch_size=batch_size)
    return time.perf_counter() - start, out


def time_reference(model, prompts, max_new, eos, latent_id):
    import torch
    from coconut.reference import torch_coconut as torch_reference
    from coconut.reference.hf_gpt2 import hf_twin
    hf = hf_twin(model)
    torch_reference.reference_generate(hf, prompts[0][:16], latent_id, 2, eos)   # warm-up
    out = []
    start = time.perf_counter()
    with torch.no_grad():
        for p in prompts:
            out.append(torch_reference.reference_generate(hf, p, latent_id, max_new, eos))
    return time.perf_counter() - start, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--val-file", default=official_path("prosqa", "valid"),
                    help="ProsQA questions (default: the official validation split shipped with the package)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="small,gpt2")
    ap.add_argument("--thoughts", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--n-ours", type=int, default=300, help="questions our decoder runs (small shape)")
    ap.add_argument("--n-ref", type=int, default=10, help="questions the reference decodes (small shape)")
    ap.add_argument("--n-ours-gpt2", type=int, default=32)
    ap.add_argument("--n-ref-gpt2", type=int, default=3)
    args = ap.parse_args()

    examples = load_examples(args.val_file)
    tok = TextTokenization()
    prompts = [latent_prompt(tok, ex, args.thoughts) for ex in examples]
    set_threads(args.threads)
    rows = []
    for shape in args.shapes.split(","):
        n_ours = args.n_ours_gpt2 if shape == "gpt2" else args.n_ours
        n_ref = args.n_ref_gpt2 if shape == "gpt2" else args.n_ref
        n_ours, n_ref = min(n_ours, len(prompts)), min(n_ref, len(prompts))
        model = build(shape, tok)
        t_ours, ours = time_ours(model, prompts[:n_ours], args.max_new_tokens, tok.eos_id, args.batch_size)
        t_ref, ref = time_reference(model, prompts[:n_ref], args.max_new_tokens, tok.eos_id, tok.latent_id)
        same = all(a == b for a, b in zip(ours[:n_ref], ref))
        ours_eps, ref_eps = n_ours / t_ours, n_ref / t_ref
        row = dict(shape=shape, **SHAPES[shape], thoughts=args.thoughts, max_new_tokens=args.max_new_tokens,
                   mean_prompt_tokens=float(np.mean([len(p) for p in prompts[:n_ours]])),
                   ours_examples=n_ours, ours_seconds=t_ours, ours_examples_per_s=ours_eps,
                   ours_mean_new_tokens=float(np.mean([len(o) for o in ours])),
                   ref_examples=n_ref, ref_seconds=t_ref, ref_examples_per_s=ref_eps,
                   ref_mean_new_tokens=float(np.mean([len(o) for o in ref])),
                   same_tokens=same, speedup=ours_eps / ref_eps, batch_size=args.batch_size)
        rows.append(row)
        print(f"{shape}: ours {n_ours} questions in {t_ours:.2f}s, reference {n_ref} in {t_ref:.2f}s", flush=True)
        del model
    print()
    print(f"ProsQA validation, {args.thoughts} thoughts, {args.max_new_tokens} new tokens, {args.threads} threads")
    print(f"{'shape':6s} {'prompt':>7s} {'ours ex/s':>10s} {'ref ex/s':>9s} {'speed-up':>9s} {'same tokens':>12s}")
    for r in rows:
        print(f"{r['shape']:6s} {r['mean_prompt_tokens']:7.0f} {r['ours_examples_per_s']:10.2f} "
              f"{r['ref_examples_per_s']:9.3f} {r['speedup']:8.1f}x {str(r['same_tokens']):>12s}")
    print("record:", write_record("inference", dict(threads=args.threads, data=os.path.abspath(args.val_file),
                                                    torch_threads=args.threads, rows=rows)))


if __name__ == "__main__":
    main()
