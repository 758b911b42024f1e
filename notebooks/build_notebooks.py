"""Writes the three example notebooks (nbformat v4, outputs empty). Run once after
editing a cell here:

    python notebooks/build_notebooks.py

Every notebook reads COCONUT_NOTEBOOK_SMALL=1 (tiny sizes, what tests/test_notebooks.py
runs) and COCONUT_NOTEBOOK_OUT (where figures and data go; default a temp folder).
"""
from __future__ import annotations

import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = '''\
import json
import os
import tempfile

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import coconut

# FULL_SIZE = True trains the shipped model's whole recipe (about 20 minutes on 2 CPU cores);
# False, the same recipe on an eighth of its data (about 2.5 minutes). COCONUT_NOTEBOOK_SMALL=1
# shrinks everything so that the tests can run this notebook in seconds.
FULL_SIZE = False
SMALL = os.environ.get("COCONUT_NOTEBOOK_SMALL") == "1"
OUT = os.environ.get("COCONUT_NOTEBOOK_OUT") or os.path.join(tempfile.gettempdir(), "coconut_notebooks")
os.makedirs(OUT, exist_ok=True)
if SMALL:   # tiny matrices: one thread wastes nothing, and never fights other processes for cores
    coconut.set_num_threads(1)
print("small" if SMALL else "full-size" if FULL_SIZE else "default-size", "run; outputs in", OUT)'''

TRAIN_HELPER = '''\
from coconut.data import generate_prosqa
from coconut.run_config import load_config
from coconut.train import Trainer

# The shipped ProsQA model's recipe, coconut/configs/prosqa-cpu-thoughts.yaml: 12,000 new questions
# every epoch, a language stage, then stage s replaces the first s steps by s thoughts (8 epochs a
# stage, six thoughts at the end, 64 epochs), the state before <eot> also trained on the step after
# it, one optimizer, the learning rate falling to 0 over the last stage; validation on the official
# 300 questions. The default size keeps the recipe and trains on an eighth of its questions
# (6,000 an epoch, 2 epochs a stage).
if SMALL:
    SIZE = ["generate.n=48", "n_embd=32", "max_latent_stage=3", "epochs_per_stage=1", "num_epochs=4",
            "recipe.lr_decay_epochs=1", "val_size=12", "max_new_tokens=24", "threads=1"]
elif FULL_SIZE:
    SIZE = []
else:
    SIZE = ["generate.n=6000", "epochs_per_stage=2", "num_epochs=16", "recipe.lr_decay_epochs=2"]
MAX_STAGE = 3 if SMALL else 6


def train_small_coconut(name, seed=0):
    """The recipe at this notebook's size: a 2-layer, 128-wide GPT-2 from scratch on edge tokens
    (one token per edge of the question, one per node in the steps). debug: no checkpoints."""
    cfg = load_config("prosqa-cpu-thoughts", SIZE + [f"name={name}", f"save_path={OUT}", "debug=true",
                                                     f"seed={seed}"])
    trainer = Trainer(cfg, verbose=True)                   # verbose: a line per epoch
    result = trainer.run()
    return trainer, result'''


SHIPPED = '''\
# the ProsQA Coconut model that ships with the package (coconut.shipped): the results table's
# seed-0 row, trained from scratch on a CPU; its validation split is the official 300 questions
run = coconut.pretrained("prosqa-coconut")
model, tok, method = run.model, run.tok, run.method
val = run.val_set[:20] if SMALL else run.val_set
K = method.max_thoughts                          # 6 thoughts at the last stage
record = coconut.shipped.record("prosqa-coconut")
print(f"shipped model: {record['preset']}, {record['epochs']} epochs, {record['accuracy']:.3f} on the "
      f"{record['n']} validation questions (reproducible mode); {len(val)} questions here")'''


def quickstart():
    cells = [
        new_markdown_cell("# Coconut quick start\n\n"
                          "Generate ProsQA data, train a small GPT-2 **from scratch** with Coconut's curriculum "
                          "(continuous thoughts replace reasoning steps stage by stage) on a symbolic "
                          "tokenization, and evaluate it with the reference's answer rule."),
        new_code_cell(SETUP),
        new_markdown_cell("## Data\n\nThe generator follows the paper's description of ProsQA: a random DAG of "
                          "is-a edges, a question \"Is Tom a A or B?\", the shortest path as the steps."),
        new_code_cell(TRAIN_HELPER),
        new_code_cell('''\
example = generate_prosqa(1, seed=123)[0]
print(example.question[:300], "...")
print("steps:", example.steps)
print("answer:", example.answer)
print(len(example.idx_to_symbol), "nodes,", len(example.edges), "edges")'''),
        new_markdown_cell("## Tokens\n\nOne token per edge of the graph in the question, then `[Q] A B [R] root`; "
                          "one token per node in the steps. At stage s the first s steps become s `<latent>` "
                          "slots between `<bot>` and `<eot>`."),
        new_code_cell('''\
from coconut.curriculum import Coconut
from coconut.tokenizer.symbolic import ProsQAEdgeTokens

tok = ProsQAEdgeTokens(max_nodes=32)
method = Coconut(c_thought=1, max_latent_stage=MAX_STAGE, pad_latent_to_max=True)
for stage in range(MAX_STAGE + 2):
    seq = method.layout(tok, example, stage)
    tail = seq.input_ids[len(tok.question_ids(example)):]
    print(f"stage {stage}: {seq.n_thoughts} thoughts, after the question:", tok.decode(tail, example).replace("\\n", " / "))'''),
        new_markdown_cell("## Training\n\nThe trainer runs the curriculum (the language stage, then the latent "
                          "stages), draws the next epoch's questions while one trains, and validates every "
                          "epoch; the learning rate falls over the last stage."),
        new_code_cell('''\
trainer, result = train_small_coconut("quickstart")
model, tok, method = result.model, trainer.tok, trainer.method
for line in result.history:
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in line.items()
           if k in ("epoch", "stage", "train_loss", "val_loss", "val_accuracy")})'''),
        new_code_cell('''\
fig, ax = plt.subplots(figsize=(5, 3))
epochs = [h["epoch"] for h in result.history]
ax.plot(epochs, [h["train_loss"] for h in result.history], label="train loss")
ax.plot(epochs, [h["val_loss"] for h in result.history], label="validation loss")
ax.set_xlabel("epoch"); ax.legend(); fig.tight_layout()
fig.savefig(os.path.join(OUT, "01_training.png"))'''),
        new_markdown_cell("## Evaluation\n\nGreedy decoding (batched, with a key/value cache) of "
                          "`question <bot> <latent>×k <eot>`; correct when the text after the last `#` "
                          "equals the answer."),
        new_code_cell('''\
from coconut.evaluate import evaluate

val = trainer.val_set
res = evaluate(model, tok, method, val, max_new_tokens=trainer.cfg.max_new_tokens)
print(f"accuracy: {res.accuracy:.3f} on {len(val)} validation questions, "
      f"{res.mean_new_tokens:.1f} new tokens on average")
rec = res.records[0]
print("gold:", rec.gold)
print("model wrote after", rec.n_thoughts, "thoughts:", rec.output.replace("\\n", " / "))'''),
        new_markdown_cell("## Against the shipped model\n\nThe package ships the results table's ProsQA Coconut "
                          "row: this recipe on all of its data (`coconut.pretrained`). Both models on the same "
                          "validation questions with k = 0..6 thoughts at inference: a model whose answers rest "
                          "on its thoughts gains with every thought."),
        new_code_cell('''\
from coconut.evaluate import k_sweep

shipped_run = coconut.pretrained("prosqa-coconut")
KS = list(range(MAX_STAGE + 1))
ours = k_sweep(model, tok, val, ks=KS, max_new_tokens=trainer.cfg.max_new_tokens)
theirs = shipped_run.k_sweep(KS, val)
print(f"this notebook's model: {res.accuracy:.3f}; the shipped model: {theirs[MAX_STAGE].accuracy:.3f} "
      f"on the same {len(val)} questions")
for k in KS:
    print(f"k={k}: this notebook's model {ours[k].accuracy:.3f}, the shipped model {theirs[k].accuracy:.3f}")'''),
    ]
    return cells


def k_sweep_notebook():
    cells = [
        new_markdown_cell("# Thoughts at inference: the k-sweep and ProsQA reasoning-path classes\n\n"
                          "One trained model, evaluated with k = 0, 1, ... continuous thoughts; each output is "
                          "classified as in the paper: correct path, longer path, hallucination, wrong target, "
                          "correct label, incorrect label."),
        new_code_cell(SETUP),
        new_code_cell(SHIPPED),
        new_code_cell('''\
from coconut.evaluate import k_sweep

KS = list(range(0, K + 1))
sweep = k_sweep(model, tok, val, ks=KS, max_new_tokens=run.cfg.max_new_tokens)
for k, res in sweep.items():
    print(f"k={k}: accuracy {res.accuracy:.3f}, {res.mean_new_tokens:.1f} new tokens")'''),
        new_code_cell('''\
from coconut.analysis import PATH_CLASSES, class_counts, class_fractions

fractions = {k: class_fractions(class_counts(val, [r.output for r in res.records], k)) for k, res in sweep.items()}
colors = {"correct_path": "#2b8cbe", "longer_path": "#a6bddb", "hallucination": "#e34a33",
          "wrong_target": "#fdbb84", "correct_label": "#31a354", "incorrect_label": "#bdbdbd"}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.plot(KS, [sweep[k].accuracy for k in KS], "o-")
ax1.set_xlabel("thoughts k at inference"); ax1.set_ylabel("accuracy"); ax1.set_ylim(0, 1)
bottom = np.zeros(len(KS))
for c in PATH_CLASSES:
    heights = np.array([fractions[k][c] for k in KS])
    ax2.bar(KS, heights, bottom=bottom, color=colors[c], label=c.replace("_", " "))
    bottom += heights
ax2.set_xlabel("thoughts k at inference"); ax2.set_ylabel("fraction of questions")
ax2.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
fig.tight_layout()
path = os.path.join(OUT, "02_k_sweep_path_classes.png")
fig.savefig(path)
print("saved", path)
print(json.dumps({k: {c: round(v, 3) for c, v in f.items()} for k, f in fractions.items()}, indent=1))'''),
        new_markdown_cell("## When to stop thinking: the learned stop classifier\n\n"
                          "A logistic-regression head on the thoughts, trained to say \"enough\" once an example "
                          "has had as many thoughts as its number of steps (capped at the last stage). Thoughts "
                          "are causal, so one run with the most thoughts tells it every shorter run; each "
                          "question is then answered with its own k*."),
        new_code_cell('''\
from coconut.data import generate_prosqa
from coconut.stop_classifier import StopClassifier, evaluate_adaptive

fit_on = generate_prosqa(40 if SMALL else 1000, seed=12345)   # training-like questions, not the validation ones
clf = StopClassifier(l2=1e-1).fit(model, tok, fit_on, k_max=K, method=method)
report = evaluate_adaptive(model, tok, val, clf, fixed_ks=KS, max_new_tokens=run.cfg.max_new_tokens,
                           max_latent_stage=K)
print("\\n".join(report.lines()))
print(f"k* equals the labelling rule for {report.label_accuracy:.2f} of the validation questions; "
      f"it thinks {report.mean_k:.2f} times on average instead of {K} "
      f"({1 - report.mean_k / K:.0%} fewer thought passes) for {report.accuracy - report.fixed[K]:+.3f} accuracy")'''),
    ]
    return cells


def probe_notebook():
    cells = [
        new_markdown_cell("# The latent value probe: do continuous thoughts search breadth-first?\n\n"
                          "Each thought is a final hidden state, so the LM head can decode it. The probability it "
                          "gives each node's token is that node's *value*. The paper finds the thoughts favour the "
                          "frontier of a breadth-first search from the root, held in superposition. The shipped "
                          "model's thought t holds the layer the search has reached, the nodes at distance t - 1, "
                          "most of all those on a shortest path to the target (`coconut eval prosqa-coconut "
                          "--probe` prints the same table)."),
        new_code_cell(SETUP),
        new_code_cell(SHIPPED),
        new_code_cell('''\
from coconut.analysis import distances, frontier
from coconut.analysis.latent_probe import probe_values

ex = val[0]
values = probe_values(model, tok, ex, K)          # (K thoughts, nodes)
print("values shape:", values.shape)
for t in range(K):   # thought t + 1 against the layer at distance t
    layer = sorted(frontier(ex, t))
    best = np.argsort(-values[t])[:5]
    print(f"thought {t + 1}: layer at distance {t} {layer}, mean value "
          f"{values[t, layer].mean() if layer else float('nan'):.3f}; top nodes {best.tolist()}")'''),
        new_code_cell('''\
def layered_layout(ex):
    """x = longest distance from a parentless node, y = order within that layer."""
    n = len(ex.idx_to_symbol)
    depth = {v: 0 for v in range(n)}
    for _ in range(n):                                    # longest-path relaxation on a DAG
        for s, d in ex.edges:
            depth[d] = max(depth[d], depth[s] + 1)
    layers = {}
    for v in range(n):
        layers.setdefault(depth[v], []).append(v)
    pos = {}
    for x, nodes in layers.items():
        for i, v in enumerate(nodes):
            pos[v] = (x, i - (len(nodes) - 1) / 2)
    return pos

pos = layered_layout(ex)
vmax = float(np.nanmax(values))
fig, axes = plt.subplots(1, K, figsize=(3 * K, 3.5), squeeze=False)
for t, ax in enumerate(axes[0]):
    for s, d in ex.edges:
        (x0, y0), (x1, y1) = pos[s], pos[d]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color="#cccccc", lw=0.6, shrinkA=5, shrinkB=5))
    xy = np.array([pos[v] for v in range(len(ex.idx_to_symbol))])
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=values[t], cmap="viridis", vmin=0, vmax=vmax, s=90, zorder=3,
                    edgecolors=["red" if v in frontier(ex, t) else "none" for v in range(len(xy))])
    for v, name in [(ex.root, "root"), (ex.target, "target"), (ex.neg_target, "neg")]:
        ax.annotate(name, pos[v], textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7)
    ax.set_title(f"thought {t + 1} (red ring: distance {t})", fontsize=8)
    ax.set_xticks([]); ax.set_yticks([])
fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label="value (probability of the node token)")
path = os.path.join(OUT, "03_probe_graph.png")
fig.savefig(path)
print("saved", path)'''),
        new_markdown_cell("## Over the validation set\n\nPer thought: the mean value of the reached layer's nodes on "
                          "a shortest path to the target, of its other nodes, and of every node outside it; and "
                          "where the attention of the position computing the thought goes (mass per edge "
                          "sentence: the layer's edges against the rest)."),
        new_code_cell('''\
from coconut.analysis.attention_maps import attention_dataset
from coconut.analysis.latent_probe import probe_dataset

n = min(len(val), 8 if SMALL else 100)
summary = probe_dataset(model, tok, val[:n], K, depth_offset=0)
attn = attention_dataset(model, tok, val[:n], K, depth_offset=0)
for t, row in summary.items():
    print(f"thought {t + 1}: on path {row['optimal_mean']:.3f}, off path {row['off_path_mean']:.3f}, "
          f"rest {row['rest_mean']:.3f}; attention per layer edge {attn['frontier_per_edge'][t]:.4f} vs other "
          f"edges {attn['other_per_edge'][t]:.4f}")
fig, ax = plt.subplots(figsize=(5, 3))
ts = np.arange(1, K + 1)
for shift, key, label in ((-0.27, "optimal_mean", "on a shortest path"), (0, "off_path_mean", "rest of the layer"),
                          (0.27, "rest_mean", "outside the layer")):
    ax.bar(ts + shift, [summary[t][key] for t in range(K)], 0.27, label=label)
ax.set_xlabel("thought"); ax.set_ylabel("mean value"); ax.legend(); fig.tight_layout()
fig.savefig(os.path.join(OUT, "03_probe_summary.png"))'''),
    ]
    return cells


def write(name, cells):
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:02d}"   # stable ids: the same generator writes the same file
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    nbformat.validate(nb)
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    print("wrote", path)


if __name__ == "__main__":
    write("01_quickstart.ipynb", quickstart())
    write("02_k_sweep_and_path_classes.ipynb", k_sweep_notebook())
    write("03_latent_bfs_probe.ipynb", probe_notebook())
