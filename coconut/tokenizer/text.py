"""The reference's text tokenization: GPT-2 BPE over the official sentence pieces.

An example becomes three kinds of pieces, encoded separately (no BOS):

    question + "\\n"        steps[i] + "\\n"        "### " + answer, then eos

Encoding the pieces separately gives the same ids as encoding the whole text at once
for the official data (the reference asserts this on the first example), and lets the
curriculum drop whole steps without re-tokenising.

Added tokens, in this order, so that the ids match the reference on the GPT-2
vocabulary: `<|start-latent|>` 50257, `<|end-latent|>` 50258, `<|latent|>` 50259.
`<pause>` (50260) is added only when asked for (`with_pause=True`, needed by the
pause-token baseline alone): every other method then has the reference's vocabulary of
50260 rows, so checkpoints and embedding shapes match it exactly. Without it
`pause_id` is None and a method that needs it fails loudly instead of using an id
outside the embedding matrix.
"""
from __future__ import annotations

from typing import Sequence

from .markers import BOT_TEXT, EOT_TEXT, LATENT_TEXT, PAUSE_TEXT
from .pieces import CachedPieces


class TextTokenization(CachedPieces):
    """`Tokenization` (see base.py) over a GPT-2 BPE tokenizer.

    The tokenizer is extended in place with the added tokens. Encodings are cached per
    example object, because the curriculum re-lays every example out every epoch.
    """

    kind = "gpt2"

    def __init__(self, tokenizer=None, *, with_pause: bool = False):
        super().__init__()
        if tokenizer is None:
            from coconut.tokenizer.bpe import GPT2Tokenizer

            tokenizer = GPT2Tokenizer()
        self.tokenizer = tokenizer
        names = [BOT_TEXT, EOT_TEXT, LATENT_TEXT] + ([PAUSE_TEXT] if with_pause else [])
        tokenizer.add_tokens(names)
        self.eos_id = int(tokenizer.eos_token_id)
        self.bot_id = int(tokenizer.token_to_id(BOT_TEXT))
        self.eot_id = int(tokenizer.token_to_id(EOT_TEXT))
        self.latent_id = int(tokenizer.token_to_id(LATENT_TEXT))
        self.pause_id = int(tokenizer.token_to_id(PAUSE_TEXT)) if with_pause else None
        added = [self.bot_id, self.eot_id, self.latent_id]
        if self.pause_id is not None:
            added.append(self.pause_id)
        try:
            self.vocab_size = len(tokenizer)
        except TypeError:  # a tokenizer without __len__
            self.vocab_size = max(added + [self.eos_id]) + 1

    def decode(self, ids: Sequence[int], example=None) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "with_pause": self.pause_id is not None}

    def node_name_ids(self, example) -> dict[int, list[int]]:
        from coconut.analysis.probe import node_token_map
        return node_token_map(example, self.tokenizer.encode, leading_space=True)

    def _encode(self, example) -> tuple:
        enc = self.tokenizer.encode
        question = tuple(enc(example.question + "\n"))
        steps = tuple(tuple(enc(s + "\n")) for s in example.steps)
        answer = tuple(enc("### " + example.answer)) + (self.eos_id,)
        return question, steps, answer
