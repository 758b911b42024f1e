"""ProsQA questions unlike the official ones, to ask whether a method generalises beyond
the distribution it was trained on. Fixed files drawn once from the generator with a
stated seed and settings, shipped in coconut/data/ood/ (README.md and SHA256SUMS there):

    steps7   shortest paths of 7 steps (the official questions take 3-6)
    steps8   shortest paths of 8 steps
    dense    60 or more edges among at most 28 nodes (official: 22-53 edges, 17-28 nodes)
    forest   every concept has one parent, so every node is reached by one path only
             (a shape the official graphs, where concepts share children, lack)

    examples = ood_split("steps7")           # a list of Examples
    coconut eval CONFIG --ood                # a checkpoint on every split

The deep splits grow deeper graphs (depth_weight 3.0 instead of 1.5): with the official
settings one graph in 4,000 has an 8-step answer. Every split keeps its graphs within 28
nodes: the generator's own graphs never have more, so a model trained on them has never
trained the tokens of nodes 28 and up, and a split with more nodes would test unseen
symbols rather than the graph. They are for reporting only: nothing is chosen on them.

    python -m coconut.data.ood            # draws the files again (minutes: the 8-step one)
"""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import asdict, replace

from coconut.data.loaders import load_examples
from coconut.data.prosqa_generator import ProsQASettings, generate_prosqa

OOD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ood")
SIZE = 300
SEED = 7001   # not a seed any preset trains or validates on

_DEEP = replace(ProsQASettings(), depth_weight=3.0, max_nodes=28)
SPLITS = {
    "steps7": replace(_DEEP, min_steps=7, max_steps=7),
    "steps8": replace(_DEEP, min_steps=8, max_steps=8),
    "dense": replace(ProsQASettings(), mean_parents=3.0, max_nodes=28, min_edges=60),
    "forest": replace(ProsQASettings(), max_parents=1, max_nodes=28),
}


def ood_names() -> list[str]:
    return list(SPLITS)


def ood_path(name: str) -> str:
    if name not in SPLITS:
        raise ValueError(f"no out-of-distribution split {name!r}; shipped: {', '.join(SPLITS)}")
    return os.path.join(OOD_DIR, f"prosqa_ood_{name}.json.gz")


def ood_split(name: str) -> list:
    """The shipped split `name` as Examples."""
    return load_examples(ood_path(name))


def draw(name: str, n: int = SIZE, start: int = 0) -> list:
    """Examples start .. start + n - 1 of the split's stream (what the file holds, from 0)."""
    return generate_prosqa(n, SEED, settings=SPLITS[name], start=start)


def write_files() -> None:
    """Draw every split and write it, with settings.json and the splits' SHA256SUMS
    (README.md's table is written by hand)."""
    from coconut.checkpoints import file_sha256
    from coconut.data.loaders import save_examples
    os.makedirs(OOD_DIR, exist_ok=True)
    sums = []
    for name in SPLITS:
        path = ood_path(name)
        plain = path[:-3]
        save_examples(plain, draw(name))
        with open(plain, "rb") as f, gzip.GzipFile(path, "wb", mtime=0) as out:   # mtime 0: the same bytes again
            out.write(f.read())
        os.remove(plain)
        sums.append(f"{file_sha256(path)}  {os.path.basename(path)}\n")
    with open(os.path.join(OOD_DIR, "SHA256SUMS"), "w", encoding="utf-8") as f:
        f.writelines(sums)
    with open(os.path.join(OOD_DIR, "settings.json"), "w", encoding="utf-8") as f:
        json.dump({"seed": SEED, "size": SIZE, "splits": {k: asdict(v) for k, v in SPLITS.items()}}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    write_files()
