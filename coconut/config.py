"""The shape of a GPT-2 model, in the names of Hugging Face's `GPT2Config`."""
from __future__ import annotations

import dataclasses
import json
import os

INIT_STD = 0.02   # GPT-2's initializer_range: the spread of every freshly drawn weight


@dataclasses.dataclass
class GPT2Config:
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    vocab_size: int = 50257
    n_positions: int = 1024
    dropout: float = 0.1  # embedding, attention and residual dropout, as GPT-2's default
    # CODI's thought projection (Linear(C, H), GELU, Linear(H, C), LayerNorm(C) on a
    # continuous thought's fed-back hidden state): its hidden width H, 0 for none
    thought_projection: int = 0

    def __post_init__(self):
        for name in ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions", "thought_projection"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or \
                    value < (0 if name in ("n_layer", "thought_projection") else 1):
                raise ValueError(f"GPT2Config.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPT2Config: n_embd = {self.n_embd} is not divisible by n_head = {self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPT2Config.dropout must be in [0, 1), got {self.dropout}")

    def to_hf_dict(self, eos_token_id: int = 50256) -> dict:
        """A `config.json` that `transformers.GPT2LMHeadModel` reads unchanged (a
        thought projection adds the key `thought_projection`, which transformers keeps as
        an attribute and does not use)."""
        extra = {"thought_projection": self.thought_projection} if self.thought_projection else {}
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_embd": self.n_embd,
            "vocab_size": self.vocab_size,
            "n_positions": self.n_positions,
            "n_ctx": self.n_positions,
            "n_inner": None,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5,
            "resid_pdrop": self.dropout,
            "embd_pdrop": self.dropout,
            "attn_pdrop": self.dropout,
            "initializer_range": INIT_STD,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
            "bos_token_id": eos_token_id,
            "eos_token_id": eos_token_id,
            "tie_word_embeddings": True,
            "torch_dtype": "float32",
            **extra,
        }

    @classmethod
    def from_hf_file(cls, path: str) -> "GPT2Config":
        """Reads a Hugging Face GPT-2 `config.json`, refusing variants the core does not compute."""
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {e.lineno}, column {e.colno}: invalid JSON ({e.msg})") from None
        if raw.get("model_type", "gpt2") != "gpt2":
            raise ValueError(f"{path}: model_type is {raw.get('model_type')!r}, only 'gpt2' is supported")
        unsupported = {
            "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
            "scale_attn_weights": (True,),
            "scale_attn_by_inverse_layer_idx": (False,),
            "reorder_and_upcast_attn": (False,),
            "tie_word_embeddings": (True,),
            "n_inner": (None,),
        }
        for key, allowed in unsupported.items():
            if key in raw and raw[key] not in allowed:
                raise ValueError(f"{path}: {key} = {raw[key]!r} is not supported (expected one of {allowed})")
        if "layer_norm_epsilon" in raw and abs(raw["layer_norm_epsilon"] - 1e-5) > 1e-12:
            raise ValueError(f"{path}: layer_norm_epsilon = {raw['layer_norm_epsilon']} (the core uses 1e-5)")
        missing = [k for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions") if k not in raw]
        if missing:
            raise ValueError(f"{path}: missing field(s) {', '.join(missing)}")
        return cls(n_layer=raw["n_layer"], n_head=raw["n_head"], n_embd=raw["n_embd"],
                   vocab_size=raw["vocab_size"], n_positions=raw["n_positions"],
                   dropout=float(raw.get("resid_pdrop", 0.1)),
                   thought_projection=raw.get("thought_projection", 0))

    def save_hf_file(self, path: str, eos_token_id: int = 50256) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_hf_dict(eos_token_id), f, indent=2)
            f.write("\n")

    @staticmethod
    def hf_path(directory: str) -> str:
        return os.path.join(directory, "config.json")
