"""Coconut in the frontier layout: every stage trains exactly the state that is fed back.

The reference layout follows the thoughts with the remaining steps in language, so a
stage trains the positions after `<eot>`, and the state the next stage feeds back as a
thought (the final state of the position before `<eot>`) is trained by nothing. Zhu et
al. 2025 ("Reasoning by Superposition") lay ProsQA out the other way: at stage s the
question, s thoughts, and ONE label, a node one hop further than the thoughts reach;
once the thoughts cover the whole path, the answer follows them. A 2-layer pass takes
about one hop, so the thoughts are the only way to the answer.

Stage s of an example whose shortest root -> target path has n steps:

    s < n:   question <bot> <latent>×s <eot>       the position before <eot> learns a node
                                                   at shortest distance s+1 from the root
    s >= n:  question <bot> <latent>×s <eot> [A] target eos     (the answer, as usual)

and the final stage as the reference's (all steps removed, max_latent_stage thoughts
with pad_latent_to_max). The label of the position before `<eot>` sits in `labels` at
`<eot>`'s index, since the loss reads labels one position ahead.

`target` says which nodes a stage's label may be:
- "path": the node the example's own steps reach (one node);
- "shortest": a node at depth s+1 on any shortest root -> target path;
- "frontier": any node at shortest distance s+1 from the root, the whole breadth-first
  layer: what a thought holding a superposition of the search's frontier stands for.
With several candidates one is drawn per example and epoch, uniformly: in expectation
that is the mean cross-entropy over the set, without a set-valued loss in the core.

ProsQA with one token per node only (`prosqa_symbolic`, `prosqa_edge_tokens`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from coconut.curriculum.method import random_below
from coconut.curriculum.sequence import TrainingSequence, thought_block
from coconut.curriculum.stages import StageCurriculum
from coconut.data.prosqa_graph import distances, edge_sentence, shortest_paths

TARGETS = ("path", "shortest", "frontier")


@dataclass
class FrontierCoconut(StageCurriculum):
    target: str = "path"

    name: ClassVar[str] = "coconut_frontier"
    thought_mode: ClassVar[str] = "continuous"

    def __post_init__(self):
        super().__post_init__()
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {list(TARGETS)}, got {self.target!r}")

    def check_tokenization(self, tok) -> None:
        super().check_tokenization(tok)
        if tok.node_token(0) is None:
            raise ValueError(f"method {self.name!r} labels thoughts with graph nodes: it needs a tokenization "
                             "with one token per node (prosqa_symbolic or prosqa_edge_tokens)")

    def layout(self, tok, example, stage: int, rng=None) -> TrainingSequence:
        n = len(example.steps)
        if stage > self.max_latent_stage or stage >= n:
            return super().layout(tok, example, stage)
        n_latents = stage * self.c_thought
        seq = TrainingSequence.from_parts(tok.question_ids(example) + thought_block(tok, n_latents), [], n_latents)
        labels = list(seq.labels)
        labels[-1] = tok.node_token(self.label_node(example, stage, rng))   # read by the position before <eot>
        return TrainingSequence(seq.input_ids, labels, seq.n_thoughts)

    def sequence(self, tok, example, epoch: int, rng=None) -> TrainingSequence:
        return self.layout(tok, example, self.example_stage(example, epoch, rng), rng)

    def label_node(self, example, stage: int, rng=None) -> int:
        """The node the state fed back after `stage` thoughts learns (see `target`).
        Without rng (a length check) the first candidate: every one is one token."""
        nodes = self.candidates(example, stage + 1)
        return nodes[0] if len(nodes) == 1 or rng is None else nodes[random_below(rng, len(nodes))]

    def candidates(self, example, depth: int) -> list[int]:
        """The nodes a label at `depth` may be, sorted."""
        if self.target == "path":
            return [gold_path(example)[depth]]
        if self.target == "shortest":
            return sorted({p[depth] for p in shortest_paths(example)})
        return sorted(v for v, d in distances(example).items() if d == depth)


def gold_path(example) -> list[int]:
    """The shortest root -> target path the example's steps state, as nodes."""
    names = example.idx_to_symbol
    for path in shortest_paths(example):
        if [edge_sentence(names[a], names[b]) for a, b in zip(path, path[1:])] == list(example.steps):
            return path
    raise ValueError(f"example (question {example.question[:60]!r}...): its steps are not a shortest path "
                     "from the root to the target")

