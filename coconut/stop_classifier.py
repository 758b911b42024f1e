"""A learned rule for when to stop thinking: logistic regression on continuous thoughts.

The paper mentions (section 3, "inference") a binary classifier on the latent thoughts
that decides when the model should leave latent mode; the reference code always uses a
fixed number. This module implements it as the smallest thing that can work: an
L2-regularised logistic-regression head on the thought vectors, in NumPy.

Features. Thought j (0-based) is the vector fed into latent slot j: the final hidden
state (after ln_f) of the position before it (`model.forward(..., return_thoughts=True)`).
The head reads thought j and answers "after thought j, is that enough thinking?".

Labels (the rule). For an example with n steps, the number of thoughts it would get at
the final stage of the curriculum, without padding, is

    needed = min(n, max_latent_stage) * c_thought

(`Coconut` with `pad_latent_to_max=False`; padding is ignored on purpose, since with it
every example would get the same count and there would be nothing to learn). Thought j
is labelled positive iff `j + 1 >= needed`. `max_latent_stage` and `c_thought` come from
the method given to `fit` (any `StageCurriculum`), else from `k_max` and 1.

Data. Every training example is run once with `k_max` thoughts (prompt
`question <bot> <latent>×k_max <eot>`); it contributes its k_max thoughts as k_max rows.

Inference. Thoughts are causal: thought j depends only on the question and thoughts
< j, never on how many slots follow. So one run with k_max latents gives every thought
the model would compute with fewer; k* = the first j + 1 whose p(stop) exceeds the
threshold (k_max when none does), and the answer is decoded with k* latents.

    clf = StopClassifier(l2=1e-2).fit(model, tok, train_examples, k_max=6, method=method)
    ks = clf.predict_k(model, tok, val_examples)
    report = evaluate_adaptive(model, tok, val_examples, clf, fixed_ks=[6])
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from coconut.collate import collate
from coconut.curriculum.method import Method, require_thoughts
from coconut.curriculum.sequence import latent_prompt

__all__ = ["StopClassifier", "AdaptiveReport", "needed_thoughts", "thought_features", "stop_labels",
           "evaluate_adaptive"]


# ----------------------------------------------------------------------------- data


def needed_thoughts(example, max_latent_stage: int, c_thought: int = 1) -> int:
    """min(len(steps), max_latent_stage) * c_thought: the thoughts the example gets at
    the final stage of the curriculum without `pad_latent_to_max`."""
    return min(len(example.steps), int(max_latent_stage)) * int(c_thought)


def stop_labels(n_needed: int, k_max: int) -> np.ndarray:
    """Labels of thoughts 0..k_max-1: 1.0 where j + 1 >= n_needed."""
    return (np.arange(1, k_max + 1) >= n_needed).astype(np.float64)


def thought_features(model, tok, examples: Sequence, k_max: int, batch_size: int = 32) -> np.ndarray:
    """(n_examples, k_max, C) thought vectors of each example run with k_max latents."""
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    out = np.zeros((len(examples), k_max, model.config.n_embd), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            prompts = [latent_prompt(tok, ex, k_max) for ex in chunk]
            limit = model.config.n_positions
            for i, p in enumerate(prompts):
                if len(p) > limit:
                    raise ValueError(f"example {start + i}: the prompt with {k_max} thoughts has {len(p)} tokens, "
                                     f"more than n_positions = {limit}")
            b = collate(prompts, tok.eos_id, tok.latent_id)
            _, thoughts = model.forward(b.input_ids, b.attention_mask, b.position_ids,
                                        thoughts=tok.thought_spec("continuous"), return_thoughts=True)
            for i, t in enumerate(thoughts):
                if t.shape[0] != k_max:
                    raise RuntimeError(f"expected {k_max} thoughts, the model returned {t.shape[0]}")
                out[start + i] = t
    finally:
        model.training = was_training
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


# ----------------------------------------------------------------------------- the head


@dataclass
class StopClassifier:
    """p(stop | thought) = sigmoid(w · (x - mean) / scale + b).

    Trained by minimising the mean logistic loss + l2/2 ·|w|² (the bias is not
    penalised), either with Newton steps (`solver="newton"`, exact, default; fine up to
    a few thousand features) or plain full-batch gradient descent (`solver="gd"`).
    Features are standardised with the training mean and standard deviation.
    `seed` fixes the subsample drawn when `max_rows` limits the training rows, and the
    small random start of gradient descent."""

    l2: float = 1e-2
    threshold: float = 0.5
    solver: str = "newton"
    max_iter: int = 50
    lr: float = 0.5
    tol: float = 1e-8
    seed: int = 0
    max_rows: int | None = None
    k_max: int | None = None
    w: np.ndarray | None = None
    b: float = 0.0
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    history: list = field(default_factory=list)   # training loss per iteration

    # -- on arrays -------------------------------------------------------------------

    def fit_arrays(self, X: np.ndarray, y: np.ndarray) -> "StopClassifier":
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
            raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("labels must be 0 or 1")
        if self.solver not in ("newton", "gd"):
            raise ValueError(f"solver must be 'newton' or 'gd', got {self.solver!r}")
        rng = np.random.default_rng(self.seed)
        if self.max_rows is not None and X.shape[0] > self.max_rows:
            keep = np.sort(rng.choice(X.shape[0], size=self.max_rows, replace=False))
            X, y = X[keep], y[keep]
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale = np.where(std > 1e-8, std, 1.0)
        Z = (X - self.mean) / self.scale
        n, d = Z.shape
        A = np.hstack([Z, np.ones((n, 1))])          # last column: the bias
        theta = np.zeros(d + 1) if self.solver == "newton" else rng.normal(0, 1e-3, d + 1)
        penalty = np.full(d + 1, self.l2)
        penalty[-1] = 0.0
        self.history = []
        for _ in range(self.max_iter):
            z = A @ theta
            p = _sigmoid(z)
            # mean logistic loss, written stably: log(1 + e^z) - y z
            loss = float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * theta ** 2))
            self.history.append(loss)
            grad = A.T @ (p - y) / n + penalty * theta
            if self.solver == "newton":
                weights = p * (1 - p) / n
                H = (A * weights[:, None]).T @ A + np.diag(penalty + 1e-10)
                step = np.linalg.solve(H, grad)
            else:
                step = self.lr * grad
            theta = theta - step
            if float(np.max(np.abs(step))) < self.tol:
                break
        self.w, self.b = theta[:-1].copy(), float(theta[-1])
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        if self.w is None:
            raise RuntimeError("the stop classifier is not trained (call fit)")
        X = np.asarray(X, dtype=np.float64)
        return ((X - self.mean) / self.scale) @ self.w + self.b

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """p(stop) of each row of X (any leading shape, last axis = features)."""
        return _sigmoid(self.decision(X))

    def k_from_proba(self, probs: np.ndarray, k_max: int | None = None) -> np.ndarray:
        """k* per row of probs (n, K): first j + 1 with p > threshold, else K."""
        probs = np.atleast_2d(np.asarray(probs))
        K = probs.shape[1] if k_max is None else min(int(k_max), probs.shape[1])
        over = probs[:, :K] > self.threshold
        return np.where(over.any(axis=1), over.argmax(axis=1) + 1, K).astype(np.int64)

    # -- on a model ------------------------------------------------------------------

    def fit(self, model, tok, examples: Sequence, k_max: int, method=None, *, max_latent_stage: int | None = None,
            c_thought: int | None = None, batch_size: int = 32) -> "StopClassifier":
        """Run every example with k_max thoughts and fit the head on its k_max thoughts,
        labelled by `needed_thoughts` (see the module docstring). A `method` must have
        continuous thoughts: the head reads those."""
        if len(examples) == 0:
            raise ValueError("fit needs at least one example")
        if method is not None:
            require_thoughts(method, "the stop classifier")
        if max_latent_stage is None:
            max_latent_stage = getattr(method, "max_latent_stage", k_max)
        if c_thought is None:
            c_thought = getattr(method, "c_thought", 1)
        feats = thought_features(model, tok, examples, k_max, batch_size)
        labels = np.stack([stop_labels(needed_thoughts(ex, max_latent_stage, c_thought), k_max) for ex in examples])
        self.k_max = int(k_max)
        self.fit_arrays(feats.reshape(-1, feats.shape[-1]), labels.reshape(-1))
        return self

    def stop_probabilities(self, model, tok, examples: Sequence, k_max: int | None = None,
                           batch_size: int = 32) -> np.ndarray:
        """(n_examples, k_max) p(stop) after each thought of one k_max run."""
        k_max = self._k_max(k_max)
        feats = thought_features(model, tok, examples, k_max, batch_size)
        return self.predict_proba(feats)

    def predict_k(self, model, tok, examples: Sequence, k_max: int | None = None, batch_size: int = 32) -> np.ndarray:
        """Number of thoughts k* in [1, k_max] for each example (one k_max run each)."""
        k_max = self._k_max(k_max)
        return self.k_from_proba(self.stop_probabilities(model, tok, examples, k_max, batch_size), k_max)

    def _k_max(self, k_max):
        k = self.k_max if k_max is None else int(k_max)
        if k is None or k < 1:
            raise ValueError("k_max is unknown: pass it, or fit the classifier on a model first")
        return k

    # -- files -----------------------------------------------------------------------

    def save(self, path: str) -> None:
        """A .npz file with the weights, the standardisation and the settings."""
        if self.w is None:
            raise RuntimeError("nothing to save: the stop classifier is not trained")
        settings = {"l2": self.l2, "threshold": self.threshold, "solver": self.solver, "max_iter": self.max_iter,
                    "lr": self.lr, "tol": self.tol, "seed": self.seed, "max_rows": self.max_rows,
                    "k_max": self.k_max, "b": self.b}
        target = path if path.endswith(".npz") else path + ".npz"
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        np.savez(target, w=self.w, mean=self.mean, scale=self.scale, settings=np.array(json.dumps(settings)))

    @classmethod
    def load(cls, path: str) -> "StopClassifier":
        source = path if os.path.exists(path) or path.endswith(".npz") else path + ".npz"
        with np.load(source) as data:
            settings = json.loads(str(data["settings"]))
            w, mean, scale = data["w"], data["mean"], data["scale"]
        b = settings.pop("b")
        clf = cls(**settings)
        clf.w, clf.mean, clf.scale, clf.b = w.astype(np.float64), mean.astype(np.float64), \
            scale.astype(np.float64), float(b)
        return clf


# ----------------------------------------------------------------------------- evaluation


@dataclass
class AdaptiveReport:
    accuracy: float                 # with k* thoughts per example
    mean_k: float                   # mean k*
    ks: list                        # k* per example
    fixed: dict                     # {k: accuracy with k thoughts for every example}
    label_accuracy: float | None = None   # k* == needed_thoughts (when the rule is known)
    records: list = field(default_factory=list)   # coconut.evaluate.Record per example (adaptive run)

    def lines(self) -> list[str]:
        out = [f"adaptive  accuracy {self.accuracy:.4f}  mean k {self.mean_k:.2f}"]
        out += [f"fixed k={k}  accuracy {acc:.4f}" for k, acc in sorted(self.fixed.items())]
        return out


class _PerExamplePrompts(Method):
    """A method-like object for `coconut.evaluate.evaluate`: each example's prompt has
    its own number of thoughts."""

    thought_mode = "continuous"

    def __init__(self, ks: dict):
        self.ks = ks

    def prompt_ids(self, tok, example, epoch):
        return latent_prompt(tok, example, self.ks[id(example)])


def evaluate_adaptive(model, tok, examples: Sequence, classifier: StopClassifier, *, fixed_ks=None,
                      k_max: int | None = None, max_new_tokens: int = 128, batch_size: int = 64,
                      max_latent_stage: int | None = None, c_thought: int = 1) -> AdaptiveReport:
    """Accuracy (reference rule) with k* thoughts chosen per example by the classifier,
    against a fixed k for every example (default: k_max)."""
    from coconut.evaluate import evaluate

    k_max = classifier._k_max(k_max)
    ks = classifier.predict_k(model, tok, examples, k_max)
    by_id = {id(ex): int(k) for ex, k in zip(examples, ks)}
    adaptive = evaluate(model, tok, _PerExamplePrompts(by_id), list(examples), max_new_tokens, batch_size, epoch=0)
    fixed = {}
    for k in ([k_max] if fixed_ks is None else fixed_ks):
        fixed[int(k)] = evaluate(model, tok, int(k), list(examples), max_new_tokens, batch_size).accuracy
    label_acc = None
    if max_latent_stage is not None:
        need = np.array([max(1, needed_thoughts(ex, max_latent_stage, c_thought)) for ex in examples])
        label_acc = float(np.mean(np.minimum(need, k_max) == ks))
    return AdaptiveReport(accuracy=adaptive.accuracy, mean_k=float(np.mean(ks)), ks=[int(k) for k in ks],
                          fixed=fixed, label_accuracy=label_acc, records=adaptive.records)
