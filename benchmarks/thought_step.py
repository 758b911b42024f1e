"""The cost of thinking: a Coconut training step with 6 continuous thoughts against the
same tokens with no thoughts (one ordinary pass), with 6 soft thoughts, with 6 Jacobi
thoughts (3 iterations, and 6 = as many as slots), with CODI's micro-batch (its teacher
reading the question, a language chain and the answer, then its student with 6
thoughts through a projection as wide as the model, CODI's prj_dim, and the
distillation of every layer's state at the answer's marker), with PCCoT's training
(the same micro-batch with Jacobi thoughts, 3 iterations, no projection), and against
the PyTorch re-enactment of the reference algorithm (transformers GPT-2, pass-by-pass
key/value cache, autograd) on the same machine and threads. Each mode's ratio is to
the continuous step.

    python benchmarks/thought_step.py [--shapes small,gpt2] [--tasks prosqa,gsm8k]
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from common import best_of, set_threads, write_record, SHAPES

import coconut
from coconut.curriculum import TrainingSequence, thought_block
from coconut.curriculum.codi import CODI, CODISequence
from coconut.tokenizer import TextTokenization

TOK = TextTokenization()   # the GPT-2 vocabulary with the reference's thought tokens
# (question tokens, answer tokens) around `<bot> <latent>x6 <eot>`: ProsQA ~400 tokens with
# ~15 supervised, GSM8k ~90 with ~12 supervised, as at the final stage of the curriculum
TASKS = {"prosqa": (380, 12), "gsm8k": (70, 12)}
# the language chain CODI's teacher reads in place of the thoughts: ProsQA's 3-6 edge
# sentences of about 10 BPE tokens, GSM8k-Aug's about 4 equations of about 10
CHAIN = {"prosqa": 50, "gsm8k": 40}


def students(task, B, n_thoughts, seed=0):
    """B (question, answer, the student's TrainingSequence of them with n_thoughts slots)."""
    q, a = TASKS[task]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(B):
        question = rng.integers(0, TOK.eos_id, size=q).tolist()
        answer = rng.integers(0, TOK.eos_id, size=a).tolist() + [TOK.eos_id]
        out.append((question, answer,
                    TrainingSequence.from_parts(question + thought_block(TOK, n_thoughts), answer, n_thoughts)))
    return out


def batch(task, B, n_thoughts, seed=0):
    seqs = [s for _, _, s in students(task, B, n_thoughts, seed)]
    return np.array([s.input_ids for s in seqs]), np.array([s.labels for s in seqs])


def codi_batch(task, B, n_thoughts, seed=0):
    """CODI's sequences of `batch`'s questions and answers, each student with its teacher."""
    chains = np.random.default_rng(seed + 1).integers(0, TOK.eos_id, size=(B, CHAIN[task])).tolist()
    seqs = []
    for (question, answer, student), chain in zip(students(task, B, n_thoughts, seed), chains):
        teacher = TrainingSequence.from_parts(question, chain + answer)
        # the answer's first token plays its marker ("###"): the distilled cell
        seqs.append(CODISequence(student.input_ids, student.labels, n_thoughts, teacher=teacher,
                                 cell=len(student.input_ids) - len(answer),
                                 teacher_cell=len(teacher.input_ids) - len(answer)))
    return seqs


N_THOUGHTS = 6
# name -> the ThoughtSpec of a step (the none step runs the same tokens as ordinary ones)
MODES = {"continuous": TOK.thought_spec("continuous"), "none": TOK.thought_spec("none"),
         "soft": TOK.thought_spec("soft"),
         "jacobi3": dataclasses.replace(TOK.thought_spec("jacobi"), iterations=3),
         f"jacobi{N_THOUGHTS}": dataclasses.replace(TOK.thought_spec("jacobi"), iterations=N_THOUGHTS)}


def ours(shape, task, ids, labels, repeats):
    """Best step time of each mode and of CODI's micro-batch, taking them in turn so that
    all see the same machine state."""
    config = coconut.GPT2Config(vocab_size=TOK.vocab_size, n_positions=1024, dropout=0.1, **shape)
    model = coconut.GPT2(config)
    opt = coconut.AdamW(model)
    codi_seqs = codi_batch(task, ids.shape[0], N_THOUGHTS)
    # CODI (projection as wide as the model) and PCCoT's training (CODI's losses with
    # Jacobi thoughts, 3 iterations, no projection): (method, model, its optimizer)
    codi = {}
    for name, projection, iterations in (("codi", config.n_embd, 0), ("codi_jacobi3", 0, 3)):
        m = coconut.GPT2(dataclasses.replace(config, thought_projection=projection))
        codi[name] = (CODI(num_latent=N_THOUGHTS, iterations=iterations), m, coconut.AdamW(m))

    def step(mode):
        if mode in codi:
            method, m, o = codi[mode]
            m.zero_grad()
            method.train_micro_batch(m, codi_seqs, TOK.eos_id, TOK.latent_id, method.thought_spec(TOK), 1.0)
            o.step()
            return
        model.zero_grad()
        model.loss_and_grad(ids, labels, thoughts=MODES[mode])
        opt.step()
    modes = [*MODES, *codi]
    for mode in modes:  # warm-up: the activation arena is allocated and touched
        step(mode)
    best = {mode: float("inf") for mode in modes}
    for _ in range(repeats):
        for mode in best:
            best[mode] = min(best[mode], best_of(lambda: step(mode), 0))
    return best


def reference(shape, ids, labels):
    import torch
    import transformers
    from coconut.reference import torch_coconut as torch_reference
    cfg = transformers.GPT2Config(vocab_size=TOK.vocab_size, n_positions=1024, **shape)
    model = transformers.GPT2LMHeadModel(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    t_ids, t_labels = torch.from_numpy(ids), torch.from_numpy(labels)
    mask = torch.ones_like(t_ids)
    pos = torch.arange(ids.shape[1]).expand_as(t_ids)

    def step():
        opt.zero_grad()
        loss, _, _ = torch_reference.coconut_forward(model, t_ids, mask, pos, t_labels, TOK.latent_id)
        loss.backward()
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="small,gpt2")
    ap.add_argument("--tasks", default="gsm8k,prosqa")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    set_threads(args.threads)
    rows = []
    for shape_name in args.shapes.split(","):
        shape = SHAPES[shape_name]
        for task in args.tasks.split(","):
            ids, labels = batch(task, args.batch, N_THOUGHTS)
            best = ours(shape, task, ids, labels, args.repeats)
            t_think, t_plain = best["continuous"], best["none"]
            row = dict(shape=shape_name, task=task, B=args.batch, T=int(ids.shape[1]), thoughts=N_THOUGHTS,
                       ours_coconut_s=t_think, ours_no_thought_s=t_plain, thinking_overhead=t_think / t_plain)
            for mode in best:
                if mode not in ("continuous", "none"):
                    row[f"ours_{mode}_s"] = best[mode]
                    row[f"{mode}_vs_continuous"] = best[mode] / t_think
            if not args.no_torch:
                t_ref = best_of(reference(shape, ids, labels), 1)
                row.update(torch_reference_s=t_ref, speedup_vs_torch=t_ref / t_think)
            rows.append(row)
            print(f"{shape_name:6s} {task:7s} B={args.batch} T={row['T']}: coconut {t_think:.2f}s, same tokens without "
                  f"thoughts {t_plain:.2f}s (x{row['thinking_overhead']:.3f})"
                  + (f", PyTorch reference {row['torch_reference_s']:.2f}s (ours x{row['speedup_vs_torch']:.2f} faster)"
                     if "torch_reference_s" in row else ""))
            for mode in best:
                print(f"    {mode:11s} {best[mode]:.3f}s  x{best[mode] / t_think:.3f} of continuous")
    name = "thought_step_" + "_".join(args.shapes.split(",")) + "_" + "_".join(args.tasks.split(","))
    print("record:", write_record(name, dict(threads=args.threads, rows=rows)))


if __name__ == "__main__":
    main()
