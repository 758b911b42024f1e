"""Train-step throughput of the C core against transformers' GPT-2 on PyTorch, same
shapes and threads, and against this machine's sgemm rate.

    python benchmarks/train_step.py [--threads 2] [--shapes small,gpt2] [--repeats 3]

The cost of reproducible mode (OpenBLAS's Haswell kernels, coconut.reproducible) against
this CPU's own kernels, on the prosqa-cpu preset's step:

    python benchmarks/train_step.py --threads 1 --cpu-time --shapes prosqa-cpu --vocab 1065 \\
        --batch 16 --length 60 --repeats 60 --record train_step_prosqa_cpu_default
    COCONUT_REPRODUCIBLE=1 python benchmarks/train_step.py ... --record train_step_prosqa_cpu_reproducible

The cost of bf16 mixed precision (GPT2(bf16=True)) against fp32, for the core (each bf16
kernel this CPU runs: emulated, and native with AVX512-BF16) and for PyTorch under
torch.autocast("cpu", dtype=torch.bfloat16), on the same step:

    python benchmarks/train_step.py --bf16 --threads 1 --cpu-time --shapes prosqa-cpu --vocab 1065 \
        --batch 16 --length 60 --repeats 30 --record train_step_bf16
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import best_of, set_threads, sgemm_gflops, train_flops_per_token, write_record, SHAPES

import coconut

P = 1024


def bf16_kernels() -> list[str]:
    """The bf16 kernels this CPU runs: emulated everywhere, native with AVX512-BF16."""
    try:
        coconut.set_bf16_kernel("native")
        return ["emulated", "native"]
    except RuntimeError:
        return ["emulated"]
    finally:
        coconut.set_bf16_kernel("auto")


def ours_step(shape, V, B, T, dropout, seed=0, bf16=False):
    cfg = coconut.GPT2Config(vocab_size=V, n_positions=P, dropout=dropout, **shape)
    model = coconut.GPT2(cfg, seed=seed, bf16=bf16)
    opt = coconut.AdamW(model)
    ids = np.random.default_rng(seed).integers(0, V, size=(B, T))

    def step():
        model.zero_grad()
        model.loss_and_grad(ids, ids)
        opt.step()
    return step


def torch_step(shape, V, B, T, dropout, seed=0, bf16=False, compiled=False):
    import torch
    import transformers
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=P, resid_pdrop=dropout, embd_pdrop=dropout,
                                  attn_pdrop=dropout,
                                  **shape)
    model = transformers.GPT2LMHeadModel(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    forward = torch.compile(model) if compiled else model   # compiles on best_of's warm-up call
    ids = torch.from_numpy(np.random.default_rng(seed).integers(0, V, size=(B, T)))

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="small,gpt2")
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dropout", type=float, default=0.1, help="0.1 as GPT-2 small trains; the CPU presets use 0")
    ap.add_argument("--gemm-threading", default="openmp", choices=["openmp", "openblas"],
                    help="who parallelises matrix products: the core's OpenMP threads (default) or OpenBLAS's")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by the process's CPU time, not wall time (one thread): on a crowded machine")
    ap.add_argument("--torch-compile", action="store_true", help="also time torch.compile of the PyTorch model")
    ap.add_argument("--bf16", action="store_true",
                    help="also time bf16 mixed precision (ours and torch.autocast) and report its cost over fp32")
    ap.add_argument("--record", help="name of the JSON record in benchmarks/results (default: train_step, "
                                     "train_step_openblas_threads with --gemm-threading openblas, or "
                                     "train_step_bf16 with --bf16)")
    args = ap.parse_args()
    if args.cpu_time and args.threads != 1:
        ap.error("--cpu-time measures one thread: the CPU time of several adds up")
    clock = time.process_time if args.cpu_time else time.perf_counter
    set_threads(args.threads)
    coconut._C.set_gemm_threading(args.gemm_threading)
    V, B, T = args.vocab, args.batch, args.length
    rate = sgemm_gflops(cpu_time=args.cpu_time)
    print(f"sgemm (2048^3, {args.threads} threads, {coconut.blas_info()['core']} kernels): {rate:.0f} GFLOP/s")
    rows = []
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        flops = train_flops_per_token(shape["n_layer"], shape["n_embd"], V, T) * B * T
        t_ours = best_of(ours_step(shape, V, B, T, args.dropout), args.repeats, clock)
        t_torch = best_of(torch_step(shape, V, B, T, args.dropout), args.repeats, clock)
        row = dict(shape=name, vocab=V, B=B, T=T, dropout=args.dropout, ours_s=t_ours, torch_s=t_torch,
                   ours_tokens_per_s=B * T / t_ours, torch_tokens_per_s=B * T / t_torch,
                   ours_gflops=flops / t_ours / 1e9, torch_gflops=flops / t_torch / 1e9,
                   ours_over_sgemm=flops / t_ours / 1e9 / rate, speedup_vs_torch=t_torch / t_ours)
        if args.torch_compile:
            t_compiled = best_of(torch_step(shape, V, B, T, args.dropout, compiled=True), args.repeats, clock)
            row.update(torch_compile_s=t_compiled, speedup_vs_torch_compile=t_compiled / t_ours)
        rows.append(row)
        print(f"{name:6s} B={B} T={T}: ours {row['ours_tokens_per_s']:.0f} tok/s ({row['ours_gflops']:.0f} GFLOP/s, "
              f"{100 * row['ours_over_sgemm']:.0f}% of sgemm), torch {row['torch_tokens_per_s']:.0f} tok/s; "
              f"speed-up x{row['speedup_vs_torch']:.2f}")
        if args.torch_compile:
            print(f"{'':6s} torch.compile {B * T / row['torch_compile_s']:.0f} tok/s; "
                  f"speed-up x{row['speedup_vs_torch_compile']:.2f}")
        if args.bf16:
            t_torch16 = best_of(torch_step(shape, V, B, T, args.dropout, bf16=True), args.repeats, clock)
            row.update(torch_bf16_s=t_torch16, torch_bf16_over_fp32=t_torch16 / t_torch)
            for kernel in bf16_kernels():
                coconut.set_bf16_kernel(kernel)
                t16 = best_of(ours_step(shape, V, B, T, args.dropout, bf16=True), args.repeats, clock)
                row.update({f"ours_bf16_{kernel}_s": t16, f"ours_bf16_{kernel}_over_fp32": t16 / t_ours,
                            f"bf16_{kernel}_speedup_vs_torch": t_torch16 / t16})
                print(f"{'':6s} bf16 ({kernel}): ours {B * T / t16:.0f} tok/s (x{t16 / t_ours:.2f} the fp32 time), "
                      f"torch autocast {B * T / t_torch16:.0f} tok/s (x{t_torch16 / t_torch:.2f}); "
                      f"speed-up x{t_torch16 / t16:.2f}")
            coconut.set_bf16_kernel("auto")
    name = args.record or ("train_step_bf16" if args.bf16 else
                           "train_step" if args.gemm_threading == "openmp" else "train_step_openblas_threads")
    print("record:", write_record(name, dict(threads=args.threads, gemm_threading=args.gemm_threading,
                                             clock="cpu" if args.cpu_time else "wall",
                                             sgemm_gflops=rate, rows=rows)))


if __name__ == "__main__":
    main()
