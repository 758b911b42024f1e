"""GPT-2 as researchers use it from Python: parameters as NumPy views named by the
Hugging Face state-dict keys, the loss and its gradient (with continuous thoughts),
logits, and checkpoints in the Hugging Face format. The C core computes."""
from __future__ import annotations

import os

import numpy as np

from . import _C
from .config import INIT_STD, GPT2Config
from .thought_spec import ThoughtSpec


def tensor_specs(config: GPT2Config) -> list[tuple[str, str, int, tuple[int, ...]]]:
    """(HF name, core block, layer, shape) of every parameter, in state-dict order."""
    C, L = config.n_embd, config.n_layer
    specs = [("transformer.wte.weight", "wte", 0, (config.vocab_size, C)),
             ("transformer.wpe.weight", "wpe", 0, (config.n_positions, C))]
    for i in range(L):
        h = f"transformer.h.{i}."
        specs += [(h + "ln_1.weight", "ln1_w", i, (C,)), (h + "ln_1.bias", "ln1_b", i, (C,)),
                  (h + "attn.c_attn.weight", "qkv_w", i, (C, 3 * C)), (h + "attn.c_attn.bias", "qkv_b", i, (3 * C,)),
                  (h + "attn.c_proj.weight", "attproj_w", i, (C, C)), (h + "attn.c_proj.bias", "attproj_b", i, (C,)),
                  (h + "ln_2.weight", "ln2_w", i, (C,)), (h + "ln_2.bias", "ln2_b", i, (C,)),
                  (h + "mlp.c_fc.weight", "fc_w", i, (C, 4 * C)), (h + "mlp.c_fc.bias", "fc_b", i, (4 * C,)),
                  (h + "mlp.c_proj.weight", "fcproj_w", i, (4 * C, C)), (h + "mlp.c_proj.bias", "fcproj_b", i, (C,))]
    specs += [("transformer.ln_f.weight", "lnf_w", 0, (C,)), ("transformer.ln_f.bias", "lnf_b", 0, (C,))]
    H = config.thought_projection
    if H:  # CODI's projection, as torch.nn.Linear and nn.LayerNorm hold it (weight (out, in))
        p = PROJECTION
        specs += [(p + "fc1.weight", "prj_fc1_w", 0, (H, C)), (p + "fc1.bias", "prj_fc1_b", 0, (H,)),
                  (p + "fc2.weight", "prj_fc2_w", 0, (C, H)), (p + "fc2.bias", "prj_fc2_b", 0, (C,)),
                  (p + "ln.weight", "prj_ln_w", 0, (C,)), (p + "ln.bias", "prj_ln_b", 0, (C,))]
    return specs


PROJECTION = "thought_projection."   # the thought projection's tensors, beside the HF keys


def _named_views(block: np.ndarray, layout: dict, specs) -> dict[str, np.ndarray]:
    views = {}
    for name, kind, layer, shape in specs:
        size = int(np.prod(shape))
        start = layout[kind] + layer * size
        views[name] = block[start:start + size].reshape(shape)
    return views


def _as_ids(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (batch, length), got {a.shape}")
    if a.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


class GPT2:
    """A GPT-2 language model (`transformers.GPT2LMHeadModel` semantics) on the C core.

    bf16=True computes as `torch.autocast("cpu", dtype=torch.bfloat16)` does: matrix
    products read bf16 operands and sum in fp32, their outputs are rounded to bf16;
    layernorm, softmax, GELU, the residual stream and the loss stay fp32, and so do the
    parameters, gradients and optimizer state. `coconut.blas_info()["bf16"]` names how
    the products run on this machine. The attribute can be changed between calls."""

    def __init__(self, config: GPT2Config, seed: int = 0, init: bool = True, bf16: bool = False):
        self.config = config
        self.bf16 = bool(bf16)
        self._core = _C.Core(config.n_layer, config.n_head, config.n_embd, config.vocab_size, config.n_positions,
                             thought_projection=config.thought_projection)
        layout = self._core.layout()
        self.param_block = np.zeros(layout["total"], dtype=np.float32)
        self.grad_block = np.zeros(layout["total"], dtype=np.float32)
        self._core.bind(self.param_block, self.grad_block)
        specs = tensor_specs(config)
        self.params = _named_views(self.param_block, layout, specs)
        self.grads = _named_views(self.grad_block, layout, specs)
        self.seed = seed
        self.training = True
        self.dropout_calls = 0  # counts training passes: each gets fresh dropout masks
        # what a call's `thoughts` defaults to: continuous once add_thought_tokens (or the
        # caller) named the three thought tokens
        self.thoughts = ThoughtSpec()
        if init:
            self._init_weights(seed)

    # ------------------------------------------------------------------ init

    def _init_weights(self, seed: int) -> None:
        """GPT-2's initialisation: normal(0, 0.02) weights, residual projections scaled
        by 1/sqrt(2 n_layer), zero biases, unit LayerNorm gains."""
        rng = np.random.default_rng(seed)
        residual_std = INIT_STD / np.sqrt(2 * max(self.config.n_layer, 1))
        for name, view in self.params.items():
            if name.startswith(PROJECTION):
                continue
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                view[...] = 1.0
            elif name.endswith(".bias"):
                view[...] = 0.0
            else:
                std = residual_std if name.endswith("c_proj.weight") else INIT_STD
                view[...] = rng.normal(0.0, std, size=view.shape).astype(np.float32)
        self._init_projection(rng)

    def _init_projection(self, rng) -> None:
        """The thought projection as torch makes it (CODI builds it fresh): nn.Linear's
        weight and bias uniform in +-1/sqrt(fan_in), nn.LayerNorm's gain 1 and bias 0."""
        for name, view in self.params.items():
            if not name.startswith(PROJECTION):
                continue
            if name.startswith(PROJECTION + "ln."):
                view[...] = 1.0 if name.endswith("weight") else 0.0
            else:
                fan_in = self.params[name.rsplit(".", 1)[0] + ".weight"].shape[1]
                bound = 1.0 / np.sqrt(fan_in)
                view[...] = rng.uniform(-bound, bound, size=view.shape).astype(np.float32)

    # ------------------------------------------------------------------ modes

    def train(self) -> "GPT2":
        self.training = True
        return self

    def eval(self) -> "GPT2":
        self.training = False
        return self

    def zero_grad(self) -> None:
        _C.fill_zero(self.grad_block)

    @property
    def num_parameters(self) -> int:
        return int(self.param_block.size)

    # ------------------------------------------------------------------ batches

    def _batch(self, input_ids, attention_mask, position_ids, labels=None):
        ids = _as_ids(input_ids, "input_ids")
        mask = np.ones_like(ids) if attention_mask is None else _as_ids(attention_mask, "attention_mask")
        if position_ids is None:
            pos = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape).copy()
        else:
            pos = _as_ids(position_ids, "position_ids")
        lab = None if labels is None else _as_ids(labels, "labels")
        return ids, mask, pos, lab

    def _spec(self, thoughts) -> ThoughtSpec:
        """A call's `thoughts`: a ThoughtSpec as given; a mode name with this model's
        thought tokens; None: this model's own spec."""
        if thoughts is None:
            return self.thoughts
        if isinstance(thoughts, ThoughtSpec):
            return thoughts
        return self.thoughts.with_mode(thoughts)

    # ------------------------------------------------------------------ compute

    def loss_and_grad(self, input_ids, labels, attention_mask=None, position_ids=None, *, thoughts=None,
                      grad_scale: float = 1.0, hidden_cells=None, hidden_grad=None) -> float:
        """Mean next-token cross-entropy over positions whose label (shifted inside, as
        `transformers` does) is not -100; gradients are added into `self.grads`.
        `thoughts`: a ThoughtSpec, a mode name ("continuous", "soft", "jacobi", "pause",
        "none") with this model's thought tokens, or None for `self.thoughts`. With
        continuous thoughts every `<latent>` slot takes the final hidden state of the
        position before it (through the thought projection if the model has one), with
        soft thoughts the mixture of token embeddings its logits
        weigh, with jacobi thoughts the state its Jacobi iterations reach (see
        coconut/thought_spec.py), and the gradient flows back through every thought.
        hidden_cells and hidden_grad add a loss on hidden states (see loss_and_count).
        A batch without a supervised position raises ValueError, exhausted memory
        MemoryError, an overflowing loss FloatingPointError (the gradients may then hold
        part of this batch's sum: zero them before going on)."""
        return self._loss(input_ids, labels, attention_mask, position_ids, thoughts, grad_scale, True,
                          hidden_cells, hidden_grad)[0]

    def loss(self, input_ids, labels, attention_mask=None, position_ids=None, *, thoughts=None) -> float:
        """The same loss without gradients (dropout off), e.g. for validation."""
        return self._loss(input_ids, labels, attention_mask, position_ids, thoughts, 1.0, backward=False)[0]

    def loss_and_count(self, input_ids, labels, attention_mask=None, position_ids=None, *, backward=True,
                       thoughts=None, grad_scale=1.0, hidden_cells=None, hidden_grad=None):
        """(mean loss, number of supervised positions): what a trainer needs to weigh micro-batches.

        hidden_cells, an integer array (n, 2) of (example, position) pairs of the batch,
        adds a third result: their hidden states (n, n_layer + 1, n_embd) float32 in
        this very forward (its dropout included), as `transformers`'
        output_hidden_states holds them: entry 0 the embeddings' sum, entry j the
        output of block j-1, the last entry the ln_f output. hidden_grad (backward
        only) adds a gradient for them, as given (grad_scale does not scale it), into
        the backward, so into every weight: an array of that shape, or a callable that
        the core calls with the hidden states between forward and backward and that
        returns one (it must not call this model; if it raises, the gradients may hold
        part of the batch's). Refused under bf16."""
        return self._loss(input_ids, labels, attention_mask, position_ids, thoughts, grad_scale, backward,
                          hidden_cells, hidden_grad)

    @property
    def dropout_calls_per_pass(self) -> int:
        """How much one training loss_and_grad call advances `dropout_calls`: a fresh
        dropout seed per call, only when dropout is on."""
        return int(bool(self.training) and float(self.config.dropout) > 0.0)

    def _loss(self, input_ids, labels, attention_mask, position_ids, thoughts, grad_scale, backward,
              hidden_cells=None, hidden_grad=None):
        ids, mask, pos, lab = self._batch(input_ids, attention_mask, position_ids, labels)
        targs = self._spec(thoughts).core_args()
        dropout = self.config.dropout if (backward and self.dropout_calls_per_pass) else 0.0
        seed = 0
        if dropout > 0.0:
            seed = (self.seed * 0x9E3779B1 + self.dropout_calls) & 0xFFFFFFFFFFFFFFFF
            self.dropout_calls += 1
        return self._core.loss(ids, mask, pos, lab, backward=backward, dropout=dropout, seed=seed,
                               grad_scale=float(grad_scale), bf16=self.bf16, hidden_cells=hidden_cells,
                               hidden_grad=hidden_grad, **targs)

    def forward(self, input_ids, attention_mask=None, position_ids=None, *, thoughts=None,
                return_thoughts: bool = False):
        """Logits (B, T, V) float32 of every position (dropout off). With return_thoughts,
        also a list per example of the (n_thoughts, C) vectors fed into its thought slots
        (continuous: hidden states; soft: the embedding mixtures; jacobi: the inputs of
        the last iteration).
        Logits at masked (padding) positions carry no meaning."""
        ids, mask, pos, _ = self._batch(input_ids, attention_mask, position_ids)
        targs = self._spec(thoughts).core_args()
        logits, vectors, where, _ = self._core.forward(ids, mask, pos, logits=True, thoughts=return_thoughts,
                                                       bf16=self.bf16, **targs)
        if not return_thoughts:
            return logits
        per_example = [vectors[where[:, 0] == b] for b in range(ids.shape[0])]
        return logits, per_example

    __call__ = forward

    def hidden_states(self, input_ids, cells, attention_mask=None, position_ids=None, *, thoughts=None) -> np.ndarray:
        """The hidden states (n, n_layer + 1, n_embd) float32 of the (example, position)
        pairs `cells` (an integer array (n, 2)) after a forward without dropout or
        gradient (entries as loss_and_count's hidden_cells): e.g. a teacher's, detached."""
        ids, mask, pos, _ = self._batch(input_ids, attention_mask, position_ids)
        targs = self._spec(thoughts).core_args()
        return self._core.forward(ids, mask, pos, logits=False, bf16=self.bf16, hidden_cells=cells, **targs)[3]

    def generate(self, prompts, max_new_tokens: int = 128, *, eos_id: int, thoughts=None, batch_size: int = 64,
                 on_batch=None) -> list[list[int]]:
        """Greedy decoding of a list of prompts (lists of ids), batched with the key/value
        cache; a prompt ending in `<bot> <latent>*k <eot>` first fills its thought slots
        by the mode's rule (continuous, soft or jacobi thoughts).
        Returns the new ids of each prompt. As in the reference, the first new token is
        kept even if it is eos; a later eos ends that prompt and is not returned.
        on_batch(prompts done, prompts in all, new tokens of the batch) follows progress."""
        targs = self._spec(thoughts).core_args()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        prompts = [list(p) for p in prompts]
        for i, p in enumerate(prompts):
            if not p:
                raise ValueError(f"prompt {i} is empty")
        results: list[list[int] | None] = [None] * len(prompts)
        # similar lengths together: less left padding
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(prompts[i]) for i in rows)
            ids = np.full((len(rows), width), eos_id, dtype=np.int64)
            mask = np.zeros_like(ids)
            pos = np.zeros_like(ids)
            for r, i in enumerate(rows):  # left padding; positions restart after the pads
                n = len(prompts[i])
                ids[r, width - n:] = prompts[i]
                mask[r, width - n:] = 1
                pos[r, width - n:] = np.arange(n)
            out, counts = self._core.generate(ids, mask, pos, int(max_new_tokens), int(eos_id), bf16=self.bf16,
                                              **targs)
            for r, i in enumerate(rows):
                results[i] = out[r, :counts[r]].tolist()
            if on_batch is not None:
                on_batch(start + len(rows), len(prompts), int(np.sum(counts)))
        return results

    # ------------------------------------------------------------------ vocabulary

    def resize_vocab(self, n_new: int, copy_from: int) -> None:
        """Grows the vocabulary by n_new rows, each (embedding = tied LM head) a copy of
        row `copy_from`. Gradients are reset; an optimizer must be rebuilt."""
        if n_new < 0:
            raise ValueError(f"n_new must be >= 0, got {n_new}")
        if not 0 <= copy_from < self.config.vocab_size:
            raise ValueError(f"copy_from = {copy_from} is outside the vocabulary of {self.config.vocab_size}")
        old = self.params
        cfg = GPT2Config(**{**self.config.__dict__, "vocab_size": self.config.vocab_size + n_new})
        fresh = GPT2(cfg, seed=self.seed, init=False)
        for name, view in old.items():
            if name == "transformer.wte.weight":
                fresh.params[name][: view.shape[0]] = view
                fresh.params[name][view.shape[0]:] = view[copy_from]
            else:
                fresh.params[name][...] = view
        self.__dict__.update({k: v for k, v in fresh.__dict__.items()
                              if k in ("config", "_core", "param_block", "grad_block", "params", "grads")})

    def add_thought_tokens(self, bot_id: int, eot_id: int, latent_id: int, copy_from: int) -> None:
        """Grows the vocabulary to hold the three thought tokens (rows copied from
        `copy_from`, the reference uses the GPT-2 token "<<"); calls then default to
        continuous thoughts with these ids (`self.thoughts`)."""
        needed = max(bot_id, eot_id, latent_id) + 1 - self.config.vocab_size
        if needed > 0:
            self.resize_vocab(needed, copy_from)
        self.thoughts = ThoughtSpec("continuous", latent_id=latent_id, bot_id=bot_id, eot_id=eot_id)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: view.copy() for name, view in self.params.items()}

    def load_state_dict(self, tensors: dict[str, np.ndarray], source: str = "state dict",
                        fresh_projection: bool = False) -> None:
        """Copies tensors in by Hugging Face name; accepts names with or without the
        `transformer.` prefix, ignores the causal-mask buffers and a tied `lm_head`.
        fresh_projection: the thought projection's tensors may be missing (they keep
        their values)."""
        seen = set()
        for raw_name, value in tensors.items():
            name = raw_name if raw_name.startswith(("transformer.", "lm_head.", PROJECTION)) \
                else "transformer." + raw_name
            if name.endswith((".attn.bias", ".attn.masked_bias")):
                continue
            if name == "lm_head.weight":
                wte = tensors.get("transformer.wte.weight", tensors.get("wte.weight"))
                if wte is not None and not np.array_equal(np.asarray(value, np.float32), np.asarray(wte, np.float32)):
                    raise ValueError(f"{source}: lm_head.weight differs from the token embedding; "
                                     "GPT-2 ties them and so does this core")
                continue
            if name not in self.params:
                raise ValueError(f"{source}: unexpected tensor {raw_name!r} for this GPT-2 shape")
            target = self.params[name]
            if tuple(value.shape) != target.shape:
                raise ValueError(f"{source}: tensor {raw_name!r} has shape {tuple(value.shape)}, "
                                 f"the config needs {target.shape}")
            target[...] = value
            seen.add(name)
        missing = [n for n in self.params if n not in seen and not (fresh_projection and n.startswith(PROJECTION))]
        if missing:
            raise ValueError(f"{source}: missing tensor(s) {', '.join(missing[:5])}"
                             + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))

    @classmethod
    def from_pretrained(cls, directory: str, seed: int = 0, bf16: bool = False,
                        thought_projection: int | None = None) -> "GPT2":
        """Reads a Hugging Face GPT-2 directory (config.json + model.safetensors), no torch,
        with its thought projection if config.json names one. thought_projection = H > 0
        gives a checkpoint without one (a plain GPT-2) a fresh projection of width H
        (drawn from `seed`), or checks that the checkpoint's has that width."""
        config = GPT2Config.from_hf_file(GPT2Config.hf_path(directory))
        fresh = False
        if thought_projection is not None and thought_projection != config.thought_projection:
            if config.thought_projection:
                raise ValueError(f"{directory}: the checkpoint's thought projection has width "
                                 f"{config.thought_projection}, not {thought_projection}")
            config = GPT2Config(**{**config.__dict__, "thought_projection": int(thought_projection)})
            fresh = True
        weights = os.path.join(directory, "model.safetensors")
        if not os.path.exists(weights):
            raise FileNotFoundError(f"{weights}: not found (only the safetensors format is read)")
        from .safetensors_io import load_safetensors
        tensors, _ = load_safetensors(weights)
        model = cls(config, seed=seed, init=False, bf16=bf16)
        if fresh:
            model._init_projection(np.random.default_rng(seed))
        model.load_state_dict({k: v.astype(np.float32, copy=False) for k, v in tensors.items()}, source=weights,
                              fresh_projection=fresh)
        return model

    def save_pretrained(self, directory: str, eos_token_id: int = 50256) -> None:
        """Writes config.json + model.safetensors that `transformers` loads unchanged."""
        from .safetensors_io import save_safetensors
        os.makedirs(directory, exist_ok=True)
        self.config.save_hf_file(GPT2Config.hf_path(directory), eos_token_id)
        save_safetensors(os.path.join(directory, "model.safetensors"), self.params, metadata={"format": "pt"})
