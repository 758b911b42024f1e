"""`coconut train | eval | sweep | report | generate-data` (also `python -m coconut ...`).

    coconut train CONFIG [--resume [N]] [--no-summary] [--set key=value ...]   (CONFIG: a file, or prosqa-cpu, ...)
    coconut eval CONFIG [--checkpoint DIR] [--k-sweep | --adaptive] [--records PATH] [--set key=value ...]
    ... [--method-class my_methods.py:MyMethod]                 (train or eval a method of your own)
    coconut sweep SPEC [--set key=value ...] [--out DIR] [--executor auto|local|mpi] [--workers N] [--dry-run]   (coconut.sweep)
    coconut report RESULTS... [--by method] [--plots DIR]
    coconut generate-data prosqa|prontoqa --n N --seed S --out PATH [--compare OFFICIAL]

A configuration or data error prints one line, `coconut: error: ...`, and exits with
status 2; nothing is trained before the checks pass.

Data-parallel over MPI (coconut.distributed; needs mpi4py):

    mpirun -np 2 coconut train CONFIG                          # one machine, 2 processes
    mpirun -np 8 --host a:4,b:4 coconut train CONFIG            # two machines, shared file system

`train` and `eval` share the work over the ranks; rank 0 alone prints and writes. An
error on any rank under MPI aborts the whole job with the same exit status.
"""
from __future__ import annotations

import argparse
import os
import sys

import coconut
from coconut.distributed import DistributedError, current

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coconut", description="Coconut: reasoning in a continuous latent space")
    p.add_argument("--version", action="version", version=f"coconut {coconut.__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
    config_help = "a YAML file, or a shipped config by name: prosqa-cpu, prontoqa-cpu, default, ..."
    set_help = "override a config key, e.g. --set lr=3e-4 or --set generate.n=100 (repeatable)"
    method_help = ("a method of your own, FILE.py:CLASS or MODULE:CLASS (a coconut.curriculum.Method subclass), "
                   "used instead of the config's method; its options still come from method_options")

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", help=config_help)
    t.add_argument("--resume", nargs="?", const="latest", default=None, metavar="N",
                   help="continue from checkpoint_N, or the latest checkpoint when N is left out")
    t.add_argument("--no-summary", dest="summary", action="store_false",
                   help="skip the summary at the end (final and best accuracy, time, tokens, the final model's "
                        "k-sweep)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    t.add_argument("--method-class", metavar="FILE.py:CLASS", help=method_help)

    e = sub.add_parser("eval", help="generation accuracy of a checkpoint on the validation data")
    e.add_argument("config", help=config_help + "; or a shipped model by name: prosqa-coconut, ...")
    e.add_argument("--checkpoint", help="a checkpoint directory (default: the run's best checkpoint)")
    e.add_argument("--untrained", action="store_true",
                   help="score the config's own weights (from scratch, or init/load_model_path) when the run has "
                        "no checkpoint, instead of refusing")
    modes = e.add_mutually_exclusive_group()
    modes.add_argument("--k-sweep", action="store_true",
                       help="accuracy with k = 0..the method's most thoughts at inference (0..6 for a method "
                            "without thoughts)")
    modes.add_argument("--probe", action="store_true",
                       help="ProsQA: the latent value probe (coconut.analysis) with the method's most thoughts: "
                            "per thought, the values of the graph layer it has reached and of the next one, on "
                            "and off the shortest paths, against the other nodes, and of every layer")
    modes.add_argument("--ood", action="store_true",
                       help="ProsQA: accuracy on each out-of-distribution split (coconut.data.ood: 7 and 8 steps, "
                            "denser graphs, forests) with the method's own prompt and, for a method with "
                            "thoughts, with two thoughts more than it was trained with")
    modes.add_argument("--adaptive", action="store_true",
                       help="fit the stop classifier (coconut.stop_classifier) on the training data, then print "
                            "its accuracy and mean thought count next to fixed k = 0..the method's most thoughts")
    e.add_argument("--fit-examples", type=int, default=1000, metavar="N",
                   help="with --adaptive: fit on the first N training examples (default: 1000)")
    e.add_argument("--records", metavar="PATH", help="write the per-example records (JSONL)")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    e.add_argument("--method-class", metavar="FILE.py:CLASS", help=method_help)

    w = sub.add_parser("sweep", help="train and analyse a grid of runs from a sweep spec (coconut.sweep)")
    w.add_argument("spec", help="a spec YAML file, or a shipped spec by name: prosqa-cpu-thoughts, prontoqa-cpu, ...")
    w.add_argument("--out", help="the folder of the run folders and results.jsonl (default: the spec's out)")
    w.add_argument("--executor", choices=["auto", "local", "mpi"], default="auto",
                   help="local processes, or MPI workers (mpirun -n K python -m mpi4py.futures -m coconut sweep "
                        "SPEC); auto: mpi under an MPI launcher (default)")
    w.add_argument("--workers", type=int, metavar="N",
                   help="rows at a time (default: local, cores // the spec's threads; mpi, every worker)")
    w.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. --set 'axes.seed=[0, 1, 2]' or --set threads=2 (repeatable)")
    w.add_argument("--dry-run", action="store_true",
                   help="print what each row needs (kept, resumed, re-run, new) and stop")

    r = sub.add_parser("report", help="the table (mean ± sd over seeds) and plots of sweep results")
    r.add_argument("results", nargs="+",
                   help="results.jsonl files (or earlier benchmarks records, benchmarks/results/reproduce*.json)")
    r.add_argument("--by", help="comma-separated columns a table line groups by (default: the axes but the seed)")
    r.add_argument("--plots", metavar="DIR", help="also write the plots (curves, stages, k-sweep, probe) here")
    r.add_argument("--prefix", default="", help="the plots' file names start with it")

    g = sub.add_parser("generate-data", help="write a generated ProsQA or ProntoQA data set (official JSON)")
    g.add_argument("dataset", choices=["prosqa", "prontoqa"], help="which generator")
    g.add_argument("--n", type=int, required=True, help="number of examples")
    g.add_argument("--seed", type=int, default=0, help="the generator's seed (default: 0)")
    g.add_argument("--out", required=True, help="the JSON file to write")
    g.add_argument("--compare", metavar="OFFICIAL", help="print ProsQA statistics next to an official file")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "report":
            return _report(args)
        return _generate(args)
    except (ValueError, OSError, NotImplementedError, DistributedError) as e:   # ConfigError is a ValueError
        return _fail(f"coconut: error: {e}", EXIT_BAD_INPUT)
    except ArithmeticError as e:   # coconut.train.TrainingDiverged: one line, not the core's traceback
        return _fail(f"coconut: error: {e}", 1)
    except KeyboardInterrupt:   # a second Ctrl-C during training, or one outside it
        return _fail("coconut: interrupted", 130)


def _fail(message: str, code: int) -> int:
    """Print the error; under MPI, with other ranks possibly waiting in a collective,
    end the whole job with this status."""
    w = current()
    if w is not None and w.size > 1:
        print(f"{message} (rank {w.rank} of {w.size})", file=sys.stderr)
        w.abort(code)
    print(message, file=sys.stderr)
    return code


def _is_root() -> bool:
    w = current()
    return w is None or w.is_root


def _train(args) -> int:
    from coconut.run_config import ConfigError, load_config
    from coconut.train import Trainer
    resume = args.resume
    if resume not in (None, "latest"):
        if not resume.isdigit():
            raise ConfigError(f"--resume: expected an epoch number, got {resume!r}")
        resume = int(resume)
    cfg = load_config(args.config, args.set)
    if cfg.only_eval:   # the reference's run.py evaluates load_model_path instead of training
        return _score(args, cfg, checkpoint=None)
    result = Trainer(cfg, resume=resume, method=_method_class(args.method_class)).run(summary=args.summary)
    if result.summary is not None and _is_root():
        print(result.summary.table())
    if _is_root():
        print(f"best validation accuracy {result.best_accuracy:.4f} (epoch {result.best_epoch}); "
              f"checkpoints in {result.save_dir}")
    return 130 if result.interrupted else 0


def _eval(args) -> int:
    from coconut.run_config import ConfigError, load_config
    from coconut import shipped
    if args.fit_examples < 1:
        raise ConfigError(f"--fit-examples must be >= 1, got {args.fit_examples}")
    if not os.path.exists(args.config) and args.config in shipped.names():   # a shipped model by name
        return _score(args, shipped.config(args.config, args.set), args.checkpoint or shipped.model_dir(args.config))
    return _score(args, load_config(args.config, args.set), args.checkpoint, args.untrained)


def _score(args, cfg, checkpoint, untrained=False) -> int:
    """What `coconut eval` prints, for a checkpoint (or with only_eval, load_model_path)."""
    from coconut.assembly import assemble, checkpoint_label
    from coconut.distributed import configure_threads, world
    from coconut.run_config import ConfigError
    adaptive, probe, sweep, ood = (getattr(args, k, False) for k in ("adaptive", "probe", "k_sweep", "ood"))
    comm = world()
    configure_threads(comm, cfg.threads)
    if adaptive and cfg.train_path is None and cfg.generate is None:
        raise ConfigError(f"{cfg.source}: --adaptive fits the stop classifier on the training data: set train_path "
                          "or generate")
    run = assemble(cfg, "eval", method=_method_class(args.method_class), checkpoint=checkpoint, untrained=untrained,
                   with_train=adaptive)   # only the stop classifier needs the training data
    method, tok, model, val = run.method, run.tok, run.model, run.val_set
    if adaptive:
        return _adaptive(cfg, method, tok, model, run.train_set[:args.fit_examples], val, comm)
    k_max = method.max_thoughts
    if ood:
        return _ood(run, comm)
    if probe:
        return _probe(cfg, method, tok, model, val, k_max) if comm.is_root else 0
    if sweep:
        results = run.k_sweep(comm=comm)
        if not comm.is_root:
            return 0
        print(f"{'k':>3}  {'accuracy':>8}  {'new tokens':>10}")
        for k, r in results.items():
            print(f"{k:>3}  {r.accuracy:>8.4f}  {r.mean_new_tokens:>10.2f}")
        return 0
    result = run.evaluate(comm=comm)
    if not comm.is_root:
        return 0
    print(f"accuracy {result.accuracy:.4f} on {len(val)} examples, {result.mean_new_tokens:.2f} new tokens "
          f"on average ({checkpoint_label(run)})")
    if getattr(args, "records", None):
        result.write_jsonl(args.records)
    return 0


def _ood(run, comm) -> int:
    """The run's model on the validation split and every out-of-distribution split."""
    import numpy as np
    _prosqa_only(run.cfg, run.val_set, "--ood: the out-of-distribution splits are ProsQA graphs")
    table = run.ood(comm=comm)
    if not comm.is_root:
        return 0
    more = run.more_thoughts
    print(f"{'split':>10}  {'n':>4}  {'own prompt':>10}  {'thoughts':>8}" + (f"  {f'k = {more}':>10}" if more else ""))
    for name, (own, extra) in table.items():
        print(f"{name:>10}  {len(own.records):>4}  {own.accuracy:>10.4f}  "
              f"{np.mean([r.n_thoughts for r in own.records]):>8.2f}" + (f"  {extra.accuracy:>10.4f}" if extra else ""))
    print("own prompt: the method's validation prompt, with the thoughts it was trained to use"
          + (f"; k = {more}: {more} thoughts, two more than it was trained with" if more else ""))
    return 0


def _probe(cfg, method, tok, model, val, k_max) -> int:
    """The latent value probe: per thought, the mean value (probability of the node's
    token under the decoded thought) of the nodes of the layer the search has reached
    (distance t - 1 from the root for thought t) and of the next layer (distance t), each
    split into the nodes on a shortest path to the target and off it, against the other
    nodes; then the mean value of every layer."""
    from coconut.analysis.latent_probe import layer_tables
    from coconut.thought_spec import FED_BACK
    _thoughts_only(cfg, method, "--probe", FED_BACK)
    _prosqa_only(cfg, val, "--probe needs graphs with named nodes")
    tables = layer_tables(model, tok, val, k_max, thoughts=method.thought_spec(tok))
    reached, following, layers = tables["reached"], tables["next"], tables["layers"]
    print(f"latent value probe on {len(val)} validation examples: a node's value is the probability of its token "
          f"under the decoded thought t; the layers are the nodes at distance t - 1 (reached) and t (next) "
          f"from the root")
    depths = "".join(f"{f'd={d}':>7}" for d in range(k_max + 1))
    print(f"{'thought':>7}  {'reached: on path':>16} {'off':>6} {'rest':>6}  {'next: on path':>13} {'off':>6} "
          f"{'rest':>6}  |{depths}  {'unreachable':>11}")
    for t in range(k_max):
        a, b = reached[t], following[t]
        row = "".join(f"{v:>7.3f}" for v in layers["by_depth"][t])
        print(f"{t + 1:>7}  {a['optimal_mean']:>16.3f} {a['off_path_mean']:>6.3f} {a['rest_mean']:>6.3f}  "
              f"{b['optimal_mean']:>13.3f} {b['off_path_mean']:>6.3f} {b['rest_mean']:>6.3f}  |{row}  "
              f"{layers['unreachable'][t]:>11.3f}")
    print("on path / off: the layer's nodes on a shortest path to the target and the others; rest: every node "
          "outside the layer; d=i: the nodes at distance i")
    return 0


def _adaptive(cfg, method, tok, model, train, val, comm) -> int:
    """The stop classifier fitted on `train` with the method's most thoughts, against
    every fixed k on the validation data."""
    from coconut.evaluate import k_sweep
    from coconut.stop_classifier import StopClassifier, evaluate_adaptive
    k_max = method.max_thoughts
    _thoughts_only(cfg, method, "--adaptive: the stop classifier")
    fixed = k_sweep(model, tok, val, ks=range(k_max + 1), max_new_tokens=cfg.max_new_tokens,
                    batch_size=cfg.eval_batch_size, comm=comm)
    # not shared out under MPI: every rank fits and decodes the same, rank 0 prints
    clf = StopClassifier(seed=cfg.seed).fit(model, tok, train, k_max, method=method, batch_size=cfg.eval_batch_size)
    report = evaluate_adaptive(model, tok, val, clf, fixed_ks=[], k_max=k_max, max_new_tokens=cfg.max_new_tokens,
                               batch_size=cfg.eval_batch_size, max_latent_stage=method.max_latent_stage,
                               c_thought=method.c_thought)
    if not comm.is_root:
        return 0
    print(f"{'k':>8}  {'accuracy':>8}  {'new tokens':>10}")
    for k, r in fixed.items():
        print(f"{k:>8}  {r.accuracy:>8.4f}  {r.mean_new_tokens:>10.2f}")
    new_tokens = sum(r.n_tokens for r in report.records) / len(report.records)
    print(f"{'adaptive':>8}  {report.accuracy:>8.4f}  {new_tokens:>10.2f}  mean thoughts {report.mean_k:.2f}")
    print(f"stop classifier fitted on {len(train)} training examples; it chose the curriculum's number of "
          f"thoughts for {report.label_accuracy:.1%} of the {len(val)} validation examples")
    return 0


def _prosqa_only(cfg, val, what: str) -> None:
    """A ConfigError unless the validation data are ProsQA graphs."""
    from coconut.run_config import ConfigError
    if not val[0].has_graph:
        raise ConfigError(f"{cfg.source}: {what}; this run's validation data is not ProsQA")


def _thoughts_only(cfg, method, what: str, modes=("continuous",)) -> None:
    """A ConfigError unless the method has thoughts of one of `modes`."""
    from coconut.curriculum.method import require_thoughts
    from coconut.run_config import ConfigError
    try:
        require_thoughts(method, what, modes)
    except ValueError as e:
        raise ConfigError(f"{cfg.source}: {e}") from None


def _method_class(spec: str | None):
    """The class `--method-class FILE.py:CLASS` (or MODULE:CLASS) names; None without one."""
    if spec is None:
        return None
    import importlib
    import importlib.util
    from coconut.curriculum import Method
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise ValueError(f"--method-class {spec!r}: expected FILE.py:CLASS or MODULE:CLASS")
    try:
        if where.endswith(".py"):
            loader = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(where))[0], where)
            if loader is None or not os.path.isfile(where):
                raise ValueError(f"--method-class {spec!r}: no file {where}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as e:
        raise ValueError(f"--method-class {spec!r}: cannot import {where} ({e})") from None
    except SyntaxError as e:
        raise ValueError(f"--method-class {spec!r}: {e.filename}, line {e.lineno}: {e.msg}") from None
    except Exception as e:   # the module's own code failed while it was loaded
        raise ValueError(f"--method-class {spec!r}: loading {where} raised {type(e).__name__}: {e}") from None
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ValueError(f"--method-class {spec!r}: {where} has no Method subclass named {name}")
    return cls


def _sweep(args) -> int:
    from coconut.sweep import load_spec, plan, run_sweep
    from coconut.sweep.runner import describe
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    spec = load_spec(args.spec, out=args.out, overrides=args.set)
    if args.dry_run:
        print(describe(plan(spec)))
        return 0
    try:
        lines = run_sweep(spec, args.executor, args.workers, echo=lambda text: print(text, flush=True))
    except RuntimeError as e:   # rows that failed: the others are recorded
        return _fail(f"coconut: error: {e}", 1)
    print(f"{len(lines)} of {len(spec.rows)} rows in {os.path.join(spec.out, 'results.jsonl')}")
    return 0


def _report(args) -> int:
    from coconut.sweep import path_table, plot, read_results, table
    lines = [line for path in args.results for line in read_results(path)]
    if not lines:
        raise ValueError(f"no runs in {', '.join(args.results)}")
    by = [b for b in args.by.split(",") if b] if args.by else None
    print(table(lines, by))
    paths = path_table(lines, by)
    if paths:
        print(paths)
    if args.plots:
        for path in plot(lines, args.plots, args.prefix, by):
            print("wrote", path)
    return 0


def _generate(args) -> int:
    from coconut.data import compare_prosqa, generate, load_examples, save_examples
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.compare and args.dataset != "prosqa":
        raise ValueError("--compare is for ProsQA only")
    examples = generate(args.dataset, args.n, args.seed, workers=os.cpu_count() or 1)
    save_examples(args.out, examples)
    print(f"wrote {len(examples)} {args.dataset} examples to {args.out}")
    if args.compare:
        print(compare_prosqa(examples, load_examples(args.compare)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
