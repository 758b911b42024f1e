"""The one interface between data and the rest of the package: how an example becomes
token ids, and what else a tokenization can do.

Two families implement it: the GPT-2 BPE text pieces of the reference
(`question + "\n"`, `step + "\n"`, `"### " + answer` + eos) and the symbolic ones for
from-scratch CPU runs. The curriculum, the trainer, the recipes and the analyses call
only what is declared here; an ability a tokenization lacks has a default that says so
(None, False, or a ValueError naming the tokenization).
"""
from __future__ import annotations

from typing import ClassVar, Sequence

from coconut.thought_spec import ThoughtSpec


class Tokenization:
    kind: ClassVar[str]      # its name in a run config's `tokenization:` and in checkpoints
    vocab_size: int          # rows of the embedding matrix the model needs
    eos_id: int              # end of sequence; also the pad id, as in the reference
    bot_id: int              # <|start-latent|>
    eot_id: int              # <|end-latent|>
    latent_id: int           # <|latent|>, a thought slot
    pause_id: int | None     # <pause>, for the pause-token baseline (None: not in the vocabulary)

    # -- what every tokenization does --------------------------------------------

    def question_ids(self, example) -> list[int]:
        """The question piece (for BPE: `question + "\\n"`)."""
        raise NotImplementedError

    def step_ids(self, example, index: int) -> list[int]:
        """Reasoning step `index` (for BPE: `steps[index] + "\\n"`)."""
        raise NotImplementedError

    def answer_ids(self, example) -> list[int]:
        """The answer piece followed by eos (for BPE: `"### " + answer`, then eos)."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int], example=None) -> str:
        """Text in the official sentence forms, so that the reference scoring rule
        (text after the last '#') and the ProsQA path analysis read it directly.
        `example` lets a symbolic tokenization name the example's own symbols."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """What a checkpoint records to build the same tokenization again ("kind" first)."""
        raise NotImplementedError

    def thought_spec(self, mode: str, **params) -> ThoughtSpec:
        """The model's view of this vocabulary's thought tokens in `mode`; `params`: the
        mode's own (soft's temperature, Jacobi's iterations)."""
        return ThoughtSpec(mode, latent_id=self.latent_id, bot_id=self.bot_id, eot_id=self.eot_id, **params)

    # -- caching (no-ops for a tokenization that encodes on the fly) -------------

    def encode_all(self, examples, workers: int = 1) -> None:
        """Encode ahead of time the examples a run will lay out again every epoch."""

    def clear_cache(self) -> None:
        """Forget the encodings `encode_all` kept."""

    # -- abilities some tokenizations have ----------------------------------------

    # node or concept tokens that a permutation can rename (recipe shuffle_nodes)
    renames_nodes: ClassVar[bool] = False
    max_nodes: int = 0

    def relabel_nodes(self, ids: Sequence[int], perm: Sequence[int]) -> list[int]:
        """`ids` with node i renamed perm[i] (only where `renames_nodes`)."""
        raise ValueError(f"tokenization {self.kind!r} has no node tokens to rename")

    def token_parts(self) -> dict[int, tuple[str, ...]] | None:
        """For each token that stands for several parts (an edge, a fact), the names of
        its parts (recipe token_init: compositional); None: no such tokens."""
        return None

    def node_token(self, node: int) -> int | None:
        """The single token of graph node `node` (the frontier method's labels); None:
        nodes are not single tokens here."""
        return None

    def node_name_ids(self, example) -> dict[int, list[int]]:
        """node index -> the ids of its name as it appears in a sentence (the latent probe)."""
        raise ValueError(f"tokenization {self.kind!r} cannot name the nodes of a ProsQA graph")
