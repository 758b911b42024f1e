"""Turns a finished training run into a shipped model (coconut/models/NAME/, see
coconut.shipped): its final checkpoint's weights and trainer state, the run's config
with portable paths, its metrics, and record.json with what the model scores in
reproducible mode, measured here in a fresh interpreter.

    COCONUT_REPRODUCIBLE=1 coconut train prosqa-cpu-thoughts --set threads=1 --set name=prosqa-coconut
    python benchmarks/ship_model.py checkpoints/prosqa-coconut prosqa-coconut --preset prosqa-cpu-thoughts
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import yaml
from common import cpu_name

from coconut.checkpoints import list_checkpoints, write_checksums
from coconut.data.official_splits import OFFICIAL_FILES, official_path
from coconut.shipped import MODELS_DIR

# the files of a checkpoint that a shipped model keeps (the optimizer's moments are for
# resuming, not for using the model)
KEPT = ("config.json", "model.safetensors", "trainer_state.json")


def portable(config: dict) -> dict:
    """The run's config with the packaged splits named as `official:...` again, and the
    machine's paths dropped."""
    official = {official_path(d, s): f"official:{d}/{s}" for d, s in OFFICIAL_FILES}
    out = dict(config)
    for key in ("train_path", "val_path"):
        if out.get(key) in official:
            out[key] = official[out[key]]
        elif out.get(key) is not None:
            raise SystemExit(f"{key}: {out[key]} is not a packaged split; a shipped model must not name a local file")
    out["save_path"] = "checkpoints"
    out["load_model_path"] = None
    return out


def score_reproducibly(model_name: str) -> dict:
    """Accuracy and the k-sweep of the shipped folder, in reproducible mode on one thread."""
    code = ("import json, coconut\n"
            f"run = coconut.pretrained({model_name!r}, ['threads=1'])\n"
            "ev = run.evaluate()\n"
            "sweep = run.k_sweep(range(run.method.max_thoughts + 1))\n"
            "print(json.dumps({'correct': sum(r.correct for r in ev.records), 'n': len(ev.records),"
            " 'accuracy': ev.accuracy, 'mean_new_tokens': ev.mean_new_tokens,"
            " 'k_sweep': {k: r.accuracy for k, r in sweep.items()}, 'blas': coconut.blas_info()['core']}))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["COCONUT_REPRODUCIBLE"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", help="the finished run's folder (save_path/name)")
    ap.add_argument("name", help="the shipped model's name, e.g. prosqa-coconut")
    ap.add_argument("--preset", required=True, help="the shipped config the run trained")
    ap.add_argument("--set", action="append", default=[], help="the --set overrides the run was trained with")
    args = ap.parse_args()
    epochs = [c for c in list_checkpoints(args.run_dir) if c[1] == 0]
    if not epochs:
        raise SystemExit(f"{args.run_dir}: no checkpoint at the end of an epoch")
    epoch, _, checkpoint = epochs[-1]
    with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as f:
        state = json.load(f)
    if epoch != state["config"]["num_epochs"]:
        raise SystemExit(f"{checkpoint}: epoch {epoch} of {state['config']['num_epochs']}: the run has not finished")
    target = os.path.join(MODELS_DIR, args.name)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    for name in KEPT:
        shutil.copy(os.path.join(checkpoint, name), target)
    config = portable(state["config"])
    state["config"] = config
    with open(os.path.join(target, "trainer_state.json"), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    with open(os.path.join(target, "run.yaml"), "w", encoding="utf-8") as f:
        f.write(f"# the config {args.name} was trained with: coconut train {args.preset} "
                + " ".join(f"--set {s}" for s in args.set) + "\n")
        yaml.safe_dump(config, f, sort_keys=False)
    shutil.copy(os.path.join(args.run_dir, "metrics.jsonl"), target)
    lines = [json.loads(line) for line in open(os.path.join(target, "metrics.jsonl"), encoding="utf-8")
             if '"val_accuracy"' in line]
    write_checksums(target)   # the evaluation below loads it through its checksums
    scored = score_reproducibly(args.name)
    record = {"name": args.name, "preset": args.preset, "overrides": args.set, "seed": config["seed"],
              "epochs": epoch, "method": state["method"], "training_val_accuracy": lines[-1]["val_accuracy"],
              "training_minutes": sum(sum(line["seconds"].values()) for line in lines) / 60,
              "trained_on": cpu_name(), **scored}
    with open(os.path.join(target, "record.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    write_checksums(target)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
