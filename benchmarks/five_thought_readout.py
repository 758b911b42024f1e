"""Why ProntoQA Coconut models score near chance with exactly five thoughts (the stage-5 dip)
while they score 99-100% with six: finished `prontoqa-cpu` run folders read at chosen
checkpoints.

    python benchmarks/five_thought_readout.py RUN_DIR... [--checkpoints 18,20,26] [--record NAME]

Every official ProntoQA chain has six steps; with five thoughts the model writes the sixth
("Alex is [not] happy.") in language after <eot>, and the answer compares it with the query.
Per checkpoint, on the validation split:
- accuracy with five and with six thoughts;
- of the sixth steps written after five thoughts: the share that is the gold step, and the
  share that has the gold person and property with the other polarity;
- the next-token prediction of the gold sixth step at two positions of one forward pass of
  `question <bot> <latent>x5 <eot>`: the last thought's slot (its final-layer state is what a
  sixth thought would feed back) and the <eot> position right after it.
Record: benchmarks/results/NAME.json.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from common import run_config, write_record

from coconut.assembly import assemble
from coconut.curriculum.sequence import latent_prompt
from coconut.evaluate import evaluate
from coconut.run_config import config_from_dict

FIVE = 5


def without_negation(sentence: str) -> str:
    return sentence.strip().replace(" not ", " ")


def written_last_step(output: str) -> str:
    """The last sentence of the language written before the answer marker."""
    sentences = [s.strip() for s in output.split("###")[0].split(".") if s.strip()]
    return sentences[-1] + "." if sentences else ""


def read_checkpoint(run_dir: str, epoch: int) -> dict:
    cfg = config_from_dict(run_config(run_dir), source=run_dir)
    run = assemble(cfg, "eval", checkpoint=os.path.join(run_dir, f"checkpoint_{epoch}"))
    tok, model, examples = run.tok, run.model, run.val_set
    five = evaluate(model, tok, FIVE, examples, cfg.max_new_tokens, cfg.eval_batch_size)
    six = evaluate(model, tok, FIVE + 1, examples, cfg.max_new_tokens, cfg.eval_batch_size)
    gold_step = same_fact_other_polarity = slot_right = eot_right = 0
    spec = tok.thought_spec("continuous")
    for ex, record in zip(examples, five.records):
        gold, written = ex.steps[-1].strip(), written_last_step(record.output)
        gold_step += written == gold
        same_fact_other_polarity += written != gold and without_negation(written) == without_negation(gold)
        ids = np.asarray([latent_prompt(tok, ex, FIVE)], dtype=np.int64)
        logits = model.forward(ids, thoughts=spec)[0]
        eot = int(np.flatnonzero(ids[0] == tok.eot_id)[-1])
        target = tok.step_ids(ex, len(ex.steps) - 1)[0]
        slot_right += int(np.argmax(logits[eot - 1]) == target)
        eot_right += int(np.argmax(logits[eot]) == target)
    n = len(examples)
    return {"checkpoint": epoch, "accuracy_5": five.accuracy, "accuracy_6": six.accuracy,
            "written_step_gold": gold_step / n, "written_step_other_polarity": same_fact_other_polarity / n,
            "last_slot_predicts_step": slot_right / n, "eot_predicts_step": eot_right / n}


def run_name(run_dir: str) -> str:
    """The folder's last two parts (e.g. haswell/seed1: runs of several kernel sets)."""
    parent, name = os.path.split(os.path.normpath(run_dir))
    return f"{os.path.basename(parent)}/{name}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="finished prontoqa-cpu Coconut run folders")
    ap.add_argument("--checkpoints", default=None, help="comma-separated epochs (checkpoint_N); "
                    "default: each run's last")
    ap.add_argument("--record", default=None)
    args = ap.parse_args()
    rows = []
    for run_dir in args.runs:
        epochs = args.checkpoints.split(",") if args.checkpoints else [run_config(run_dir)["num_epochs"]]
        for epoch in (int(e) for e in epochs):
            row = {"run": run_name(run_dir), **read_checkpoint(run_dir, epoch)}
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
            rows.append(row)
    if args.record:
        print(write_record(args.record, {"what": __doc__.split("\n\n")[0], "rows": rows}))


if __name__ == "__main__":
    main()
