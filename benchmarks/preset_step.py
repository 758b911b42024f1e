"""The CPU presets' own training step, on their real batches, against transformers'
GPT-2 on PyTorch doing what the reference does with the same padded batches: the CoT
row one forward and backward over the (B, T) grid (eager and torch.compile), the
Coconut row the reference's pass-by-pass algorithm (coconut/reference/torch_coconut.py, eager).
Both sides take an AdamW step per batch; one thread, timed by CPU time (--threads N:
N threads on both sides, timed by the wall clock; --per-stage: each stage on its own).

    python benchmarks/preset_step.py [--rows prosqa-cpu:cot,prosqa-cpu:coconut] [--stages 0,3,6]
    python benchmarks/preset_step.py --rows prosqa-cpu-thoughts:coconut --stages 0,1,2,3,4,5,6 \
        --per-stage --threads 2 --no-compile --record preset_step_thoughts_2threads

Each row's batches are the first --batches micro-batches of its training set at the
given stages, collated as training collates them. The core runs only the cells whose
output something reads (the loss's packed rows, csrc/rows.h); "performed" counts the
FLOPs it then does (rows kept, attention pairs per pass), set against the same run's
one-thread sgemm rate; "full grid" times the same core on every cell of the batches
(loss(packed=False)), the full-grid computation. Results:
benchmarks/results/preset_step.json.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time

from common import best_of, set_threads, sgemm_gflops, write_record
from preset_run import ROW_SETS

import coconut
from coconut.collate import collate


ROWS = "prosqa-cpu:cot,prosqa-cpu:coconut,prontoqa-cpu:cot,prontoqa-cpu:coconut"


def preset_trainer(preset: str, sets: list[str], save_dir: str):
    """The preset's trainer (its model, tokenizer, method) and its first epoch's examples;
    nothing here trains a next epoch, so none is drawn in the background while a step is
    timed."""
    from coconut.run_config import load_config
    from coconut.train import Trainer
    trainer = Trainer(load_config(preset, [*sets, f"save_path={save_dir}"]), verbose=False)
    examples = trainer.training_set(0)
    trainer.data.close()
    return trainer, examples


def epoch_batches(trainer, examples: list, epoch: int) -> list:
    """`examples` laid out as epoch `epoch` lays them out, in micro-batches collated as
    training collates them."""
    tok, bs = trainer.tok, trainer.cfg.batch_size_training
    seqs = trainer.sequences(examples, epoch, random.Random(epoch))
    return [collate(seqs[i:i + bs], tok.eos_id, tok.latent_id) for i in range(0, len(seqs), bs)]


def preset_batches(row: str, stages: list[int], n_batches: int, save_dir: str, threads: int = 1):
    """The trainer and its first micro-batches at each stage."""
    preset, method = row.split(":")
    trainer, examples = preset_trainer(preset, [f"method={method}", f"threads={threads}", "epochs_per_stage=1",
                                                "first_stage_epochs=1", *ROW_SETS.get(row, [])], save_dir)
    examples = examples[:trainer.cfg.batch_size_training * n_batches]
    # one epoch per stage: epoch `stage` trains stage `stage`
    return trainer, [b for stage in stages for b in epoch_batches(trainer, examples, stage)]


def performed_flops(batch, config, targs: dict) -> float:
    """Forward + backward FLOPs of the core's step on `batch`: the products over the rows
    it keeps (every layer but the last on `rows`, the last one's attention, MLP and ln_f on
    `out_rows`), the LM head at supervised positions, and attention's products per pass
    (the whole query x key block of each example and head). The rows and attention's keys
    and queries are the core's own row plan (_C.row_plan)."""
    C, L, V = config.n_embd, config.n_layer, config.vocab_size
    plan = coconut._C.row_plan(batch.input_ids, batch.attention_mask, batch.labels, n_layer=L, **targs)
    n_rows, n_out, n_sup = plan["rows"], plan["out_rows"], (batch.labels[:, 1:] != -100).sum()
    linear = 2 * C * C * (12 * n_rows * (L - 1) + 3 * n_rows + 9 * n_out) + 2 * n_sup * C * V
    # (query, key) pairs of every pass, per layer: the last layer's queries are out_rows
    keys = plan["keys"]
    pairs = (L - 1) * (keys * plan["queries"]).sum() + (keys * plan["out_queries"]).sum()
    # products: forward 1x, backward 2x (input and weight gradients); attention 2 forward
    # products and 5 backward ones (scores recomputed), 2 FLOPs per multiply-add over C
    return 3 * linear + 14 * pairs * C


def ours_step(trainer, batches, targs: dict, packed: bool = True):
    """packed=False: the core on the whole (B, T) grid, the full-grid computation."""
    model = trainer.model
    opt = coconut.AdamW(model)

    def step():
        for b in batches:
            model.zero_grad()
            model._core.loss(b.input_ids, b.attention_mask, b.position_ids, b.labels, packed=packed, **targs)
            opt.step()
    return step


def torch_step(trainer, batches, continuous: bool, compiled: bool):
    import torch
    from coconut.reference import torch_coconut as torch_reference
    from coconut.reference.hf_gpt2 import hf_twin
    hf = hf_twin(trainer.model).train()
    opt = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.01)
    forward = torch.compile(hf, dynamic=True) if compiled else hf
    tensors = [tuple(torch.from_numpy(x) for x in (b.input_ids, b.attention_mask, b.position_ids, b.labels))
               for b in batches]
    latent = trainer.tok.latent_id

    def step():
        for ids, mask, pos, labels in tensors:
            opt.zero_grad()
            if continuous:
                loss = torch_reference.coconut_forward(forward, ids, mask, pos, labels, latent)[0]
            else:
                loss = forward(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels).loss
            loss.backward()
            opt.step()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default=ROWS, help="PRESET:METHOD, comma-separated")
    ap.add_argument("--stages", default="0,3,6")
    ap.add_argument("--batches", type=int, default=4, help="micro-batches per stage")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--record", default="preset_step")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per-stage", action="store_true", help="a row of the record for each stage")
    args = ap.parse_args()
    set_threads(args.threads)
    one = args.threads == 1
    clock = time.process_time if one else time.perf_counter
    rate = sgemm_gflops(cpu_time=one)
    print(f"sgemm (2048^3, {args.threads} threads, {coconut.blas_info()['core']} kernels): {rate:.0f} GFLOP/s")
    all_stages = [int(s) for s in args.stages.split(",")]
    groups = [[s] for s in all_stages] if args.per_stage else [all_stages]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for row_name, stages in ((r, g) for r in args.rows.split(",") for g in groups):
            trainer, batches = preset_batches(row_name, stages, args.batches, tmp, args.threads)
            set_threads(args.threads)   # PyTorch's too
            continuous = trainer.method.thought_mode == "continuous"
            tokens = int(sum(b.attention_mask.sum() for b in batches))
            grid = int(sum(b.input_ids.size for b in batches))
            targs = trainer.tok.thought_spec("continuous" if continuous else "none").core_args()
            flops = sum(performed_flops(b, trainer.model.config, targs) for b in batches)
            t_ours = best_of(ours_step(trainer, batches, targs), args.repeats, clock)
            t_grid = best_of(ours_step(trainer, batches, targs, packed=False), args.repeats, clock)
            t_torch = best_of(torch_step(trainer, batches, continuous, False), max(1, args.repeats // 2), clock)
            row = dict(row=row_name, stages=stages, batches=len(batches), tokens=tokens, real_fraction=tokens / grid,
                       ours_s=t_ours, ours_full_grid_s=t_grid, speedup_vs_full_grid=t_grid / t_ours,
                       torch_s=t_torch, speedup_vs_torch=t_torch / t_ours,
                       ours_tokens_per_s=tokens / t_ours, performed_gflops=flops / t_ours / 1e9,
                       performed_over_sgemm=flops / t_ours / 1e9 / rate)
            line = (f"{row_name} stages {','.join(map(str, stages))}: {len(batches)} batches, {100 * row['real_fraction']:.0f}% real cells; ours "
                    f"{row['ours_tokens_per_s']:.0f} tok/s ({row['performed_gflops']:.0f} GFLOP/s performed, "
                    f"{100 * row['performed_over_sgemm']:.0f}% of sgemm), x{row['speedup_vs_full_grid']:.2f} the full "
                    f"grid; PyTorch eager x{row['speedup_vs_torch']:.2f}")
            if not continuous and not args.no_compile:
                t_comp = best_of(torch_step(trainer, batches, False, True), max(1, args.repeats // 2), clock)
                row.update(torch_compile_s=t_comp, speedup_vs_torch_compile=t_comp / t_ours)
                line += f", torch.compile x{row['speedup_vs_torch_compile']:.2f}"
            rows.append(row)
            print(line, flush=True)
    print("record:", write_record(args.record, dict(threads=args.threads, clock=clock.__name__, sgemm_gflops=rate,
                                                    rows=rows)))


if __name__ == "__main__":
    main()
