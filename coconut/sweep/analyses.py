"""What a sweep measures on a row's final checkpoint after training, each analysis a few
results columns; the checkpoint is put together by coconut.assembly as `coconut eval`
does, so a row is scored the way a lone run is.

- k_sweep: accuracy with k = 0..the method's most thoughts, run as the method runs
  them (0..6 for a method with none: its own prompt is k = 0), columns k0..kN;
- probe (ProsQA, thoughts fed back: continuous, soft, jacobi): the latent value probe of
  coconut.analysis, per thought the layer it has reached (distance t - 1) and the next,
  and every layer's mean;
- path_classes (ProsQA): the fractions of the paper's reasoning-path classes of the
  final model's own answers, columns path_CLASS, and for a method with thoughts the
  same after each k of the k-sweep (its Figure 5), `path_k` ({k: {CLASS: fraction}});
- splits: accuracy on extra evaluation files, columns split_NAME.
An analysis that does not apply to a row (a probe without thoughts) leaves its columns out.
"""
from __future__ import annotations

from coconut.assembly import assemble
from coconut.data import load_examples
from coconut.sweep.results import probe_summary
from coconut.thought_spec import FED_BACK


def analyse(cfg, checkpoint: str, analyses, splits: dict) -> dict:
    """The results columns of `analyses` for the model of `checkpoint`."""
    if not analyses:
        return {}
    run = assemble(cfg, "eval", checkpoint=checkpoint)
    method, tok, model, val = run.method, run.tok, run.model, run.val_set
    prosqa = val[0].has_graph
    k_max = method.max_thoughts
    out = {}
    own = sweep = None
    paths = "path_classes" in analyses and prosqa
    if method.thought_mode != "none" and ("k_sweep" in analyses or paths):
        sweep = run.k_sweep()
    if "k_sweep" in analyses:
        if sweep is None:   # nothing to sweep: the method's own prompt is k = 0
            own = run.evaluate()
            out["k0"] = own.accuracy
        else:
            out.update({f"k{k}": r.accuracy for k, r in sweep.items()})
    if "probe" in analyses and prosqa and method.thought_mode in FED_BACK and k_max >= 1:
        from coconut.analysis.latent_probe import layer_tables
        tables = layer_tables(model, tok, val, k_max, thoughts=run.thoughts)
        probe = {"reached": tables["reached"], "next": tables["next"],
                 "by_depth": tables["layers"]["by_depth"].tolist()}
        out.update(probe_summary({kind: ({str(t): v for t, v in value.items()} if isinstance(value, dict) else value)
                                  for kind, value in probe.items()}))
    if paths:
        from coconut.analysis import class_counts, class_fractions

        def fractions(result):
            return class_fractions(class_counts(val, [r.output for r in result.records],
                                                [r.n_thoughts for r in result.records]))
        own = own or run.evaluate()
        out.update({f"path_{c}": f for c, f in fractions(own).items()})
        if sweep is not None:
            out["path_k"] = {str(k): fractions(r) for k, r in sweep.items()}
    for name, path in (splits.items() if "splits" in analyses else ()):   # the same model on other questions
        out[f"split_{name}"] = run.evaluate(load_examples(path)).accuracy
    return out
