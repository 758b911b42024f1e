"""The parts of a run, each from its config: the method, the data, the tokenization,
the recipe and the model. coconut.assembly puts them together (the one place that does);
everything that can be refused is refused here, before any training time is spent.

Each object checks its own options: a method its fields, a tokenization its data, a
recipe option the method and tokenization it joins. A refusal is a ConfigError naming
the config file and what it refused.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import random

import coconut
from coconut import hub_cache
from coconut.config import GPT2Config
from coconut.curriculum import METHODS, StageCurriculum
from coconut.curriculum.registry import METHOD_KEYS, method_with_keys, reference_method_class
from coconut.data import generate, load_examples
from coconut.recipes import Recipe
from coconut.run_config import ConfigError, RunConfig, method_keys

GPT2_COPY_FROM = 16791   # the GPT-2 token "<<": the reference initialises the new rows from it


def build_method(cfg: RunConfig, method=None):
    """The run's method: `method` when given (an object, used as it is, or a class made
    with `method_options` and the config's METHOD_KEYS that are its fields), else
    `method` by name from coconut.curriculum.METHODS, else the method the reference
    flags select. The method checks its own options."""
    if method is not None and not isinstance(method, type):
        if cfg.method_options:
            raise ConfigError(f"{cfg.source}: method_options: the method is given as an object "
                              f"({type(method).__name__}); set its options on it")
        return method
    keys = method_keys(cfg)
    try:
        cls = method or (_method_class(cfg) if cfg.method else reference_method_class(keys))
        options = _known_options(cfg, cls)
    except NotImplementedError as e:
        raise ConfigError(f"{cfg.source}: method: {e}") from None
    try:
        return method_with_keys(cls, keys, options)
    except (ValueError, TypeError, NotImplementedError) as e:
        raise ConfigError(f"{cfg.source}: method: {e}") from None


def _method_class(cfg: RunConfig):
    """The class `method` names."""
    if cfg.method not in METHODS:
        close = difflib.get_close_matches(cfg.method, list(METHODS), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{cfg.source}: method: unknown method {cfg.method!r}{hint}; known: {sorted(METHODS)} "
                          "(a method of your own: --method-class FILE.py:CLASS, or Trainer(cfg, method=...))")
    return METHODS[cfg.method]


def _known_options(cfg: RunConfig, cls) -> dict:
    """method_options, each a field of the method and none of METHOD_KEYS (those are
    keys of the config itself: one way in for each option)."""
    fields = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    known = [name for name in fields if name not in METHOD_KEYS]
    for key in cfg.method_options:
        if key in METHOD_KEYS:
            raise ConfigError(f"{cfg.source}: method_options: '{key}' is a key of the config itself "
                              f"({key}: ...), not a method option")
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{cfg.source}: method_options: '{key}' is not an option of method "
                              f"{cfg.method or cls.name}{hint}; known: {known}")
    return dict(cfg.method_options)


def build_recipe(cfg: RunConfig) -> Recipe:
    """The config's recipe options, their values checked."""
    try:
        return Recipe(cfg.recipe)
    except ValueError as e:
        raise ConfigError(f"{cfg.source}: recipe: {e}") from None


def check_recipe(cfg: RunConfig, recipe: Recipe, method, tok) -> None:
    """Every recipe option fits the method, the tokenization and the model's origin."""
    try:
        recipe.fits(method, tok, from_scratch=cfg.init == "scratch" and not cfg.load_model_path)
    except ValueError as e:
        raise ConfigError(f"{cfg.source}: recipe: {e}") from None


def load_data(cfg: RunConfig, workers: int = 1, with_train: bool = True):
    """(train examples, validation examples, (train name, validation name)). workers:
    processes that draw generated data (coconut.data.generated). Without with_train
    (an evaluation) the training set is neither read nor drawn: it comes back empty."""
    g = cfg.generate
    if g is not None:
        from_file = cfg.val_path is not None
        train = generate(g.dataset, g.n, g.seed, workers=workers) if with_train else []
        # the validation examples follow the training ones in the generator's stream
        val = _load(cfg.val_path, "val_path", cfg) if from_file else generate(g.dataset, g.val_n, g.seed,
                                                                                start=g.n, workers=workers)
        names = (f"generated {g.dataset} (seed {g.seed}) training set",
                 cfg.val_path if from_file else f"generated {g.dataset} validation set")
    else:
        if with_train and cfg.train_path is None:
            raise ConfigError(f"{cfg.source}: train_path: no training data: set train_path (and val_path) or generate")
        train = _load(cfg.train_path, "train_path", cfg) if with_train else []
        val = _load(cfg.val_path, "val_path", cfg)
        names = (cfg.train_path, cfg.val_path)
    train = train[:cfg.train_size] if cfg.train_size else train
    val = val[:cfg.val_size] if cfg.val_size else val
    if with_train and not train:
        raise ConfigError(f"{cfg.source}: the training set ({names[0]}) is empty")
    if not val:
        raise ConfigError(f"{cfg.source}: the validation set ({names[1]}) is empty")
    return train, val, names


def _load(path, key, cfg):
    if not os.path.exists(path):
        raise ConfigError(f"{cfg.source}: {key}: {path} does not exist")
    return load_examples(path)


def build_tokenization(cfg: RunConfig, method, examples, saved: dict | None = None):
    kind = cfg.tokenization
    if saved is not None and saved.get("kind") != kind:
        raise ConfigError(f"{cfg.source}: tokenization {kind!r} differs from the checkpoint's {saved.get('kind')!r}")
    if kind == "gpt2":
        from coconut.tokenizer.text import TextTokenization
        return TextTokenization(with_pause=bool(method.needs_pause_token or (saved or {}).get("with_pause")))
    from coconut.tokenizer.symbolic import PRONTOQA_TOKENIZATIONS, PROSQA_TOKENIZATIONS
    known = ["gpt2", *PROSQA_TOKENIZATIONS, *PRONTOQA_TOKENIZATIONS]
    if kind not in known:
        close = difflib.get_close_matches(str(kind), known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{cfg.source}: tokenization: unknown {kind!r}{hint}; known: {known}")
    if kind in PRONTOQA_TOKENIZATIONS and cfg.generate is not None and cfg.generate.fresh_each_epoch:
        # a ProntoQA vocabulary holds the words and facts of the data it was built from
        raise ConfigError(f"{cfg.source}: generate: fresh_each_epoch needs a fixed vocabulary (gpt2 or "
                          f"{', '.join(PROSQA_TOKENIZATIONS)}), got tokenization {kind!r}")
    if kind in PROSQA_TOKENIZATIONS:
        cls = PROSQA_TOKENIZATIONS[kind]
        if saved is not None:
            return cls.from_dict(saved)
        missing = next((i for i, ex in enumerate(examples) if not ex.has_graph), None)
        if missing is not None:
            raise ConfigError(f"{cfg.source}: tokenization {kind} needs ProsQA examples with their graph "
                              f"(idx_to_symbol); example {missing} of the data has none")
        return cls(max_nodes=max([32] + [len(ex.idx_to_symbol) for ex in examples]))
    cls = PRONTOQA_TOKENIZATIONS[kind]
    return cls.from_dict(saved) if saved is not None else cls.build([examples])


def saved_tokenization(directory: str | None) -> dict | None:
    """The tokenization recorded in a coconut checkpoint (None for other model directories)."""
    path = os.path.join(directory, "trainer_state.json") if directory else None
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("tokenization")


def model_shape(cfg: RunConfig, tok, checkpoint: str | None = None) -> GPT2Config:
    """The shape the model will have, read without loading any weights."""
    source = checkpoint or pretrained_dir(cfg)
    if source is None:
        dropout = GPT2Config.dropout if cfg.dropout is None else cfg.dropout
        return GPT2Config(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, vocab_size=tok.vocab_size,
                          n_positions=cfg.n_positions, dropout=dropout, thought_projection=cfg.thought_projection)
    return GPT2Config.from_hf_file(GPT2Config.hf_path(source))


def pretrained_dir(cfg: RunConfig) -> str | None:
    """The Hugging Face directory the weights come from (None: from scratch): a local
    directory, or a model_id's snapshot in the local hub cache."""
    if cfg.load_model_path:
        path, key = cfg.load_model_path, "load_model_path"
    elif cfg.init == "pretrained":
        path, key = cfg.model_id, "model_id"
    else:
        return None
    if path and os.path.isfile(os.path.join(path, "config.json")):
        return path
    hub_name = key == "model_id" and path and hub_cache.is_repo_id(path)
    cached = hub_cache.snapshot_dir(path) if hub_name else None
    if cached:
        return cached
    looked = f", nor in the Hugging Face cache ({' or '.join(hub_cache.repo_folders(path))})" if hub_name else ""
    raise ConfigError(f"{cfg.source}: {key}: {path!r} is not a local Hugging Face model directory "
                      f"(config.json + model.safetensors){looked}; download it first, e.g. `huggingface-cli "
                      "download openai-community/gpt2`, or point the key at a local directory")


def build_model(cfg: RunConfig, tok, checkpoint: str | None = None, recipe: Recipe | None = None):
    """From the checkpoint, else the pretrained directory, else from scratch (rows set
    by the recipe)."""
    source = checkpoint or pretrained_dir(cfg)
    if source is None:
        model = coconut.GPT2(model_shape(cfg, tok), seed=cfg.seed)
        (recipe or Recipe()).init_model(model, tok, cfg.seed)
    else:
        model = coconut.GPT2.from_pretrained(source, seed=cfg.seed, thought_projection=cfg.thought_projection or None)
        if cfg.dropout is not None:
            model.config.dropout = cfg.dropout
        if model.config.vocab_size < tok.vocab_size:   # GPT-2 itself: grow by <bot> <eot> <latent> (<pause>)
            model.add_thought_tokens(tok.bot_id, tok.eot_id, tok.latent_id, copy_from=GPT2_COPY_FROM)
            model.resize_vocab(tok.vocab_size - model.config.vocab_size, copy_from=GPT2_COPY_FROM)
        if model.config.vocab_size != tok.vocab_size:
            raise ConfigError(f"{cfg.source}: the model in {source} has {model.config.vocab_size} token rows, "
                              f"the tokenization needs {tok.vocab_size}")
    model.thoughts = tok.thought_spec("continuous")
    model.bf16 = cfg.bf16
    return model


def check_lengths(method, tok, examples, name, epochs, n_positions: int, max_new_tokens: int | None = None):
    """Every sequence the run will build fits n_positions (with max_new_tokens: every
    generation prompt plus its new tokens). Raises naming the data set and example. A
    stage curriculum is checked at every stage an example may take, whatever its
    per-example schedule (a subclass may draw stages at random)."""
    by_stage = {}
    for e in epochs:
        by_stage.setdefault(method.stage(e), e)   # one epoch per distinct stage suffices
    if not by_stage:
        return
    for i, ex in enumerate(examples):
        try:
            if max_new_tokens is not None:
                n, epoch = max((len(method.prompt_ids(tok, ex, e)), e) for e in by_stage.values())
                n += max_new_tokens
                what = f"its prompt at epoch {epoch} plus max_new_tokens = {max_new_tokens} make {n} tokens"
            elif isinstance(method, StageCurriculum):
                n, s = method.longest_layout(tok, ex)
                what = f"it has {n} tokens at stage {s}"
            else:
                n, epoch = max((method.sequence(tok, ex, e, random.Random(0)).longest, e)
                               for e in by_stage.values())
                what = f"it has {n} tokens at epoch {epoch}"
        except ValueError as e:
            raise ConfigError(f"{name}: example {i}: {e}") from None
        if n > n_positions:
            raise ConfigError(f"{name}: example {i} is too long: {what}, more than n_positions = "
                              f"{n_positions} (question {ex.question[:50]!r}...)")
