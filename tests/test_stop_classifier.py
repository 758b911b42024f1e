"""The learned stop classifier (coconut/stop_classifier.py): the logistic head on
synthetic data, the labelling rule, causality of thoughts (the basis of its one-run
inference), k* within bounds, files, and the adaptive evaluation on a tiny model."""
import numpy as np
import pytest

import coconut
from coconut.curriculum import Coconut
from coconut.curriculum.sequence import latent_prompt
from coconut.data import generate_prosqa
from coconut.stop_classifier import (StopClassifier, evaluate_adaptive, needed_thoughts, stop_labels,
                                     thought_features)
from coconut.tokenizer.symbolic import ProsQASymbolic

K_MAX = 5


@pytest.fixture(scope="module")
def setup():
    examples = generate_prosqa(10, seed=3)
    tok = ProsQASymbolic(max_nodes=32)
    cfg = coconut.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=tok.vocab_size, n_positions=200,
                             dropout=0.0)
    model = coconut.GPT2(cfg, seed=1)
    rng = np.random.default_rng(1)
    for view in model.params.values():   # larger than GPT-2's init: thoughts differ from one another
        if view.ndim == 2:
            view *= 4.0
        else:
            view += rng.normal(0, 0.1, view.shape).astype(np.float32)
    model.thoughts = tok.thought_spec("continuous")
    return model.eval(), tok, examples


def separable(seed=0, n=200, d=6):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X = rng.normal(size=(n, d)) * np.array([1, 10, 0.1, 1, 3, 1]) + 5.0
    margin = (X - 5.0) @ w
    keep = np.abs(margin) > 0.3   # a gap between the classes
    return X[keep], (margin[keep] > 0).astype(float)


@pytest.mark.parametrize("solver,iters", [("newton", 50), ("gd", 2000)])
def test_fit_separates_linearly_separable_data(solver, iters):
    X, y = separable()
    assert 0.2 < y.mean() < 0.8
    clf = StopClassifier(l2=1e-4, solver=solver, max_iter=iters, lr=1.0).fit_arrays(X, y)
    pred = clf.predict_proba(X) > 0.5
    assert np.mean(pred == y.astype(bool)) == 1.0
    assert clf.history[-1] < 0.2 * clf.history[0]
    assert np.all(np.diff(clf.history[:20]) <= 1e-12)   # the loss never rises at first


def test_l2_shrinks_the_weights_and_seed_fixes_subsample():
    X, y = separable(seed=1)
    weak = StopClassifier(l2=1e-3).fit_arrays(X, y)
    strong = StopClassifier(l2=1.0).fit_arrays(X, y)
    assert np.linalg.norm(strong.w) < 0.5 * np.linalg.norm(weak.w)
    a = StopClassifier(max_rows=50, seed=7).fit_arrays(X, y)
    b = StopClassifier(max_rows=50, seed=7).fit_arrays(X, y)
    c = StopClassifier(max_rows=50, seed=8).fit_arrays(X, y)
    assert np.array_equal(a.w, b.w) and not np.allclose(a.w, c.w)


def test_labelling_rule_and_k_from_probabilities():
    ex = generate_prosqa(1, seed=0)[0]
    n = len(ex.steps)
    assert needed_thoughts(ex, 6) == min(n, 6)
    assert needed_thoughts(ex, 2, c_thought=2) == 4
    assert stop_labels(3, 5).tolist() == [0, 0, 1, 1, 1]
    assert stop_labels(0, 3).tolist() == [1, 1, 1]
    clf = StopClassifier(threshold=0.5)
    probs = np.array([[0.1, 0.6, 0.9, 0.2], [0.1, 0.2, 0.3, 0.4], [0.9, 0.1, 0.1, 0.1]])
    assert clf.k_from_proba(probs).tolist() == [2, 4, 1]
    assert clf.k_from_proba(probs, k_max=1).tolist() == [1, 1, 1]


def test_thoughts_are_causal(setup):
    """Thoughts 1..k of a run with K_MAX latents equal those of a run with k latents:
    one K_MAX run tells the classifier every thought a shorter run would compute."""
    model, tok, examples = setup
    full = thought_features(model, tok, examples[:4], K_MAX)
    for k in (1, 2, 4):
        part = thought_features(model, tok, examples[:4], k)
        assert np.max(np.abs(full[:, :k] - part)) <= 1e-5
    assert np.std(full[:, 1] - full[:, 0]) > 1e-3   # thoughts differ, the check has teeth


def test_fit_on_model_predict_k_and_files(setup, tmp_path):
    model, tok, examples = setup
    method = Coconut(max_latent_stage=4)
    clf = StopClassifier(l2=1e-1).fit(model, tok, examples, k_max=K_MAX, method=method)
    assert clf.k_max == K_MAX and clf.w.shape == (model.config.n_embd,)
    feats = thought_features(model, tok, examples, K_MAX)
    labels = np.stack([stop_labels(needed_thoughts(ex, 4), K_MAX) for ex in examples])
    # the head learned its labels on the training rows better than chance
    acc = np.mean((clf.predict_proba(feats) > 0.5) == labels.astype(bool))
    assert acc > max(labels.mean(), 1 - labels.mean())
    ks = clf.predict_k(model, tok, examples)
    assert ks.shape == (len(examples),) and ks.min() >= 1 and ks.max() <= K_MAX
    assert np.array_equal(ks, clf.k_from_proba(clf.predict_proba(feats)))
    assert clf.predict_k(model, tok, examples, k_max=2).max() <= 2
    always = StopClassifier(**{**clf.__dict__, "threshold": -1.0})
    never = StopClassifier(**{**clf.__dict__, "threshold": 1.0})
    assert set(always.predict_k(model, tok, examples).tolist()) == {1}
    assert set(never.predict_k(model, tok, examples).tolist()) == {K_MAX}
    clf.save(str(tmp_path / "stop"))
    again = StopClassifier.load(str(tmp_path / "stop.npz"))
    assert again.k_max == K_MAX and again.threshold == clf.threshold
    np.testing.assert_array_equal(again.predict_proba(feats), clf.predict_proba(feats))


def test_evaluate_adaptive_decodes_with_each_examples_k(setup):
    model, tok, examples = setup
    clf = StopClassifier(l2=1e-1).fit(model, tok, examples, k_max=K_MAX, max_latent_stage=4)
    clf.threshold = float(np.median(clf.stop_probabilities(model, tok, examples)))  # a mix of k values
    report = evaluate_adaptive(model, tok, examples, clf, fixed_ks=[1, K_MAX], max_new_tokens=6,
                               max_latent_stage=4)
    assert len(set(report.ks)) > 1
    assert report.mean_k == pytest.approx(np.mean(report.ks))
    assert sorted(report.fixed) == [1, K_MAX]
    for ex, k, rec in zip(examples, report.ks, report.records):
        assert rec.n_thoughts == k
        new = model.generate([latent_prompt(tok, ex, k)], 6, eos_id=tok.eos_id)[0]
        assert rec.output == tok.decode(new, ex)
    need = np.array([min(needed_thoughts(ex, 4), K_MAX) for ex in examples])
    assert report.label_accuracy == pytest.approx(np.mean(need == np.array(report.ks)))
