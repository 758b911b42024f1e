"""An epoch's fresh ProsQA questions: drawing them (the Python generator against the C
core's draws, the same questions) and encoding them with prosqa_edge_tokens (the
sentence-by-sentence reading, the whole-question one, and the generator's layout that a
run reads: the same ids), one thread, as a `prosqa-cpu-thoughts` run does every epoch.

    python benchmarks/epoch_data.py [--n 12000] [--repeats 3]

Each figure is the best of --repeats (process CPU time, so that a shared machine's
other jobs stay out of it). Record: benchmarks/results/epoch_data.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

from common import best_of, cpu_name, write_record
from coconut.data import generate_prosqa
from coconut.tokenizer.prosqa import ProsQAEdgeTokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12000, help="questions (prosqa-cpu-thoughts draws 12,000 an epoch)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    start = 36000   # epoch 3's part of the preset's stream
    seconds, examples = {}, {}
    for engine in ("python", "c"):
        def draw():
            examples[engine] = generate_prosqa(args.n, 0, start=start, engine=engine)
        seconds[f"draw_{engine}"] = best_of(draw, args.repeats, clock=time.process_time)
    assert examples["python"] == examples["c"]
    tok, questions = ProsQAEdgeTokens(), examples["c"]
    unlaid = [dataclasses.replace(ex, layout=None) for ex in questions]   # read from their text
    readings = {"checked": (tok._encode_checked, questions), "whole_question": (tok._encode_fast, unlaid),
                "layout": (tok._encode_fast, questions)}
    encoded = {}
    for reading, (encode, exs) in readings.items():
        def encode_all():
            encoded[reading] = [encode(ex) for ex in exs]
        seconds[f"encode_{reading}"] = best_of(encode_all, args.repeats, clock=time.process_time)
    assert encoded["checked"] == encoded["whole_question"] == encoded["layout"]
    for name, s in seconds.items():
        print(f"{name}: {s:.3f} s for {args.n} questions ({1e6 * s / args.n:.1f} us each)")
    print(f"draw x{seconds['draw_python'] / seconds['draw_c']:.1f}, encode x"
          f"{seconds['encode_checked'] / seconds['encode_whole_question']:.1f} (whole question), x"
          f"{seconds['encode_checked'] / seconds['encode_layout']:.1f} (layout)")
    print("record:", write_record("epoch_data", dict(cpu=cpu_name(), n=args.n, repeats=args.repeats, seconds=seconds)))


if __name__ == "__main__":
    main()
