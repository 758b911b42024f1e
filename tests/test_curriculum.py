"""Methods turn real examples into the reference's token sequences and labels.

Expected ids below were written out by hand from the GPT-2 encodings of the first
ProsQA and GSM8k validation examples (checked against Hugging Face's GPT-2 tokenizer).
"""
import math
import random
from dataclasses import dataclass

import numpy as np
import pytest

from coconut.curriculum import (
    IGNORE, METHODS, CoT, Coconut, ICoT, Method, NoCoT, NoCurriculum, NoThought,
    PauseAsThought, PauseToken, StageCurriculum, TrainingSequence, latent_prompt,
    make_method, method_from_reference_config,
)
from coconut.data import official
from coconut.tokenizer.bpe import GPT2Tokenizer
from coconut.tokenizer.text import TextTokenization

BOT, EOT, LAT, PAUSE, EOS = 50257, 50258, 50259, 50260, 50256
X = IGNORE

# ProsQA valid[0]: 3 steps, question of 229 tokens.
PQ_Q_HEAD, PQ_Q_TAIL, PQ_Q_LEN = [6109, 427, 931, 385, 318, 257], [629, 398, 79, 385, 30, 198], 229
PQ_S = [
    [13787, 318, 257, 1059, 79, 385, 13, 198],                  # "Tom is a terpus.\n"
    [6109, 1059, 79, 385, 318, 257, 865, 11011, 385, 13, 198],  # "Every terpus is a brimpus.\n"
    [6109, 865, 11011, 385, 318, 257, 443, 3149, 385, 13, 198],  # "Every brimpus is a lempus.\n"
]
PQ_A = [21017, 4186, 318, 257, 443, 3149, 385, 13, EOS]          # "### Tom is a lempus." eos

# GSM8k valid[0]: 4 steps.
GSM_Q = [7554, 6630, 465, 8701, 284, 362, 8331, 13, 220, 632, 13676, 764, 20, 8331, 583,
         1227, 13, 220, 1649, 340, 3011, 284, 604, 8331, 339, 6630, 340, 736, 866, 284, 362,
         8331, 13, 220, 632, 1575, 720, 3064, 284, 651, 465, 8701, 2005, 13, 220, 1374, 881,
         857, 339, 1414, 583, 614, 30, 198]
GSM_S = [
    [16791, 19, 12, 17, 28, 17, 4211, 198],     # "<<4-2=2>>\n"
    [16791, 17, 11757, 20, 28, 19, 4211, 198],  # "<<2/.5=4>>\n"
    [16791, 1065, 14, 19, 28, 18, 4211, 198],   # "<<12/4=3>>\n"
    [16791, 3064, 9, 18, 28, 6200, 4211, 198],  # "<<100*3=300>>\n"
]
GSM_A = [21017, 5867, EOS]                      # "### 300" eos


@pytest.fixture(scope="module")
def tok():
    return TextTokenization(GPT2Tokenizer())


@pytest.fixture(scope="module")
def tok_pause():
    return TextTokenization(GPT2Tokenizer(), with_pause=True)


@pytest.fixture(scope="module")
def prosqa():
    return official("prosqa", "valid")


@pytest.fixture(scope="module")
def pq(prosqa):
    return prosqa[0]


@pytest.fixture(scope="module")
def gsm():
    return official("gsm8k", "valid")[0]


@pytest.fixture(scope="module")
def PQ_Q(tok, pq):
    q = tok.question_ids(pq)
    assert len(q) == PQ_Q_LEN and q[:6] == PQ_Q_HEAD and q[-6:] == PQ_Q_TAIL
    return q


def check(seq, untrained, trained, n_thoughts):
    assert seq.input_ids == untrained + trained
    assert seq.labels == [X] * len(untrained) + trained
    assert seq.n_thoughts == n_thoughts


# ---- the text tokenization -----------------------------------------------------------

def test_text_tokenization_ids_and_pieces(tok, tok_pause, pq, gsm, PQ_Q):
    assert (tok.bot_id, tok.eot_id, tok.latent_id, tok.eos_id) == (BOT, EOT, LAT, EOS)
    assert tok.vocab_size == 50260 and tok.pause_id is None
    assert tok_pause.pause_id == PAUSE and tok_pause.vocab_size == 50261
    assert [tok.step_ids(pq, i) for i in range(3)] == PQ_S
    assert tok.answer_ids(pq) == PQ_A
    assert tok.question_ids(gsm) == GSM_Q
    assert [tok.step_ids(gsm, i) for i in range(4)] == GSM_S
    assert tok.answer_ids(gsm) == GSM_A
    # the reference's check: pieces concatenated == the whole text encoded at once
    for ex in (pq, gsm):
        whole = ex.question + "\n" + "\n".join(ex.steps) + "\n### " + ex.answer
        pieces = tok.question_ids(ex) + sum((tok.step_ids(ex, i) for i in range(len(ex.steps))), [])
        assert tok.tokenizer.encode(whole) + [EOS] == pieces + tok.answer_ids(ex)
    assert tok.decode([BOT, LAT, EOT] + GSM_A) == "<|start-latent|><|latent|><|end-latent|>### 300<|endoftext|>"


def test_text_tokenization_caches_per_example(pq):
    calls = []

    class Counting(GPT2Tokenizer):
        def encode(self, text):
            calls.append(text)
            return super().encode(text)

    t = TextTokenization(Counting())
    m = Coconut()
    first = [m.sequence(t, pq, e).input_ids for e in (0, 5, 40)]
    assert len(calls) == 1 + 3 + 1            # question, 3 steps, answer: once
    assert first[0] != first[1]
    t.question_ids(pq)[0] = -1                # callers cannot corrupt the cache
    assert t.question_ids(pq)[0] == PQ_Q_HEAD[0]
    t.clear_cache()
    t.answer_ids(pq)
    assert len(calls) == 10


# ---- Coconut ---------------------------------------------------------------------------

PROSQA_CFG = dict(c_thought=1, epochs_per_stage=5, max_latent_stage=6)


def test_coconut_stage0_full_cot_with_empty_markers(tok, pq, PQ_Q):
    m = Coconut(**PROSQA_CFG)
    assert m.thought_mode == "continuous"
    for epoch in (0, 4):
        check(m.sequence(tok, pq, epoch), PQ_Q + [BOT, EOT], PQ_S[0] + PQ_S[1] + PQ_S[2] + PQ_A, 0)
    assert m.prompt_ids(tok, pq, 0) == PQ_Q + [BOT, EOT]


def test_coconut_middle_stages(tok, pq, PQ_Q):
    m = Coconut(**PROSQA_CFG)
    check(m.sequence(tok, pq, 5), PQ_Q + [BOT, LAT, EOT], PQ_S[1] + PQ_S[2] + PQ_A, 1)
    check(m.sequence(tok, pq, 14), PQ_Q + [BOT, LAT, LAT, EOT], PQ_S[2] + PQ_A, 2)
    check(m.sequence(tok, pq, 15), PQ_Q + [BOT, LAT, LAT, LAT, EOT], PQ_A, 3)
    assert m.prompt_ids(tok, pq, 14) == PQ_Q + [BOT, LAT, LAT, EOT]


def test_stage_beyond_the_steps_keeps_adding_latents(tok, pq, PQ_Q):
    # 3 steps at stage 5: all steps gone, 5·c latents (no min with the step count)
    check(Coconut(**PROSQA_CFG).sequence(tok, pq, 25), PQ_Q + [BOT] + [LAT] * 5 + [EOT], PQ_A, 5)
    check(Coconut(c_thought=2, epochs_per_stage=5, max_latent_stage=6).sequence(tok, pq, 27),
          PQ_Q + [BOT] + [LAT] * 10 + [EOT], PQ_A, 10)
    # stage 6 = max_latent_stage is still a scheduled stage: 6 latents, padding or not
    for pad in (False, True):
        check(Coconut(**PROSQA_CFG, pad_latent_to_max=pad).sequence(tok, pq, 30),
              PQ_Q + [BOT] + [LAT] * 6 + [EOT], PQ_A, 6)
    # ... but the validation prompt caps at the example's steps unless padding
    assert Coconut(**PROSQA_CFG).prompt_ids(tok, pq, 25) == PQ_Q + [BOT, LAT, LAT, LAT, EOT]
    assert Coconut(**PROSQA_CFG, pad_latent_to_max=True).prompt_ids(tok, pq, 25) == \
        PQ_Q + [BOT] + [LAT] * 5 + [EOT]


def test_final_stage_with_and_without_padding(tok, pq, PQ_Q):
    plain = Coconut(**PROSQA_CFG)
    padded = Coconut(**PROSQA_CFG, pad_latent_to_max=True)
    assert plain.stage(35) == 7 == plain.final_stage
    check(plain.sequence(tok, pq, 35), PQ_Q + [BOT, LAT, LAT, LAT, EOT], PQ_A, 3)
    check(padded.sequence(tok, pq, 49), PQ_Q + [BOT] + [LAT] * 6 + [EOT], PQ_A, 6)
    assert plain.prompt_ids(tok, pq, 49) == PQ_Q + [BOT, LAT, LAT, LAT, EOT]
    assert padded.prompt_ids(tok, pq, 49) == PQ_Q + [BOT] + [LAT] * 6 + [EOT]


def test_gsm_schedule(tok, gsm):
    m = Coconut(c_thought=2, epochs_per_stage=3, max_latent_stage=3, pad_latent_to_max=True)
    assert [m.stage(e) for e in (0, 2, 3, 5, 6, 9, 12, 24)] == [0, 0, 1, 1, 2, 3, 4, 4]   # 4: final
    check(m.sequence(tok, gsm, 3), GSM_Q + [BOT, LAT, LAT, EOT], GSM_S[1] + GSM_S[2] + GSM_S[3] + GSM_A, 2)
    check(m.sequence(tok, gsm, 9), GSM_Q + [BOT] + [LAT] * 6 + [EOT], GSM_S[3] + GSM_A, 6)
    check(m.sequence(tok, gsm, 12), GSM_Q + [BOT] + [LAT] * 6 + [EOT], GSM_A, 6)
    assert m.prompt_ids(tok, gsm, 24) == GSM_Q + [BOT] + [LAT] * 6 + [EOT]
    assert m.prompt_ids(tok, gsm, 4) == GSM_Q + [BOT, LAT, LAT, EOT]


def test_without_curriculum_is_final_stage_from_epoch_0(tok, pq, PQ_Q):
    for m in (Coconut(**PROSQA_CFG, curriculum=False), NoCurriculum(**PROSQA_CFG)):
        assert m.stage(0) == 7
        check(m.sequence(tok, pq, 0), PQ_Q + [BOT, LAT, LAT, LAT, EOT], PQ_A, 3)
        assert m.prompt_ids(tok, pq, 0) == PQ_Q + [BOT, LAT, LAT, LAT, EOT]
    assert NoCurriculum(**PROSQA_CFG, pad_latent_to_max=True).sequence(tok, pq, 0).n_thoughts == 6


def test_uniform_prob_draws_stage_like_the_reference(tok, prosqa):
    ex = prosqa[0]
    m = Coconut(**PROSQA_CFG, uniform_prob=1.0)
    for seed in range(20):
        # the reference: random.random() < p, then random.choice(range(len(steps) + 1))
        ref = random.Random(seed)
        assert ref.random() < 1.0
        stage = ref.choice(list(range(len(ex.steps) + 1)))
        seq = m.sequence(tok, ex, 40, random.Random(seed))
        assert seq.n_thoughts == stage
        assert seq.input_ids == m.layout(tok, ex, stage).input_ids
    # hand-checked: random.Random(0) gives u = 0.844 (< 0.9), then stage randrange(4) = 3
    check(Coconut(**PROSQA_CFG, uniform_prob=0.9).sequence(tok, ex, 0, random.Random(0)),
          tok.question_ids(ex) + [BOT, LAT, LAT, LAT, EOT], PQ_A, 3)
    # u = 0.844 >= 0.5: the scheduled stage (0) is kept
    assert Coconut(**PROSQA_CFG, uniform_prob=0.5).sequence(tok, ex, 0, random.Random(0)).n_thoughts == 0


def test_uniform_prob_mixes_stages_over_a_dataset(tok, prosqa):
    m = Coconut(**PROSQA_CFG, uniform_prob=0.3)
    rng = np.random.default_rng(0)
    stages = [m.sequence(tok, ex, 49, rng).n_thoughts for ex in prosqa]
    n_steps = [len(ex.steps) for ex in prosqa]
    scheduled = [min(n, 6) for n in n_steps]        # final stage, no padding
    mixed = sum(s != f for s, f in zip(stages, scheduled))
    assert 40 <= mixed <= 110                       # ~0.3·300·(1 - 1/5) expected
    assert all(0 <= s <= n for s, n in zip(stages, n_steps))
    with pytest.raises(ValueError, match="rng"):
        m.sequence(tok, prosqa[0], 0)               # needs an rng
    assert Coconut(**PROSQA_CFG).sequence(tok, prosqa[0], 0).n_thoughts == 0  # p = 0: no rng needed


# ---- ablations and baselines ---------------------------------------------------------

def test_no_thought_removes_steps_without_any_markers(tok, pq, PQ_Q):
    m = NoThought(epochs_per_stage=5, max_latent_stage=6)
    assert m.thought_mode == "none"
    check(m.sequence(tok, pq, 0), PQ_Q, PQ_S[0] + PQ_S[1] + PQ_S[2] + PQ_A, 0)
    check(m.sequence(tok, pq, 10), PQ_Q, PQ_S[2] + PQ_A, 0)
    check(m.sequence(tok, pq, 49), PQ_Q, PQ_A, 0)
    check(NoThought(pad_latent_to_max=True).sequence(tok, pq, 49), PQ_Q, PQ_A, 0)
    assert m.prompt_ids(tok, pq, 49) == PQ_Q


def test_pause_as_thought_has_coconut_sequences(tok, pq, gsm):
    a, b = Coconut(**PROSQA_CFG), PauseAsThought(**PROSQA_CFG)
    assert b.thought_mode == "pause"
    for epoch in (0, 7, 25, 40):
        for ex in (pq, gsm):
            assert a.sequence(tok, ex, epoch) == b.sequence(tok, ex, epoch)
            assert a.prompt_ids(tok, ex, epoch) == b.prompt_ids(tok, ex, epoch)


def test_cot_and_no_cot(tok, pq, gsm, PQ_Q):
    for epoch in (0, 30):
        check(CoT().sequence(tok, pq, epoch), PQ_Q, PQ_S[0] + PQ_S[1] + PQ_S[2] + PQ_A, 0)
        check(CoT().sequence(tok, gsm, epoch), GSM_Q, sum(GSM_S, []) + GSM_A, 0)
        check(NoCoT().sequence(tok, gsm, epoch), GSM_Q, GSM_A, 0)
    assert CoT().prompt_ids(tok, gsm, 3) == GSM_Q == NoCoT().prompt_ids(tok, gsm, 3)
    assert CoT().thought_mode == NoCoT().thought_mode == "none"


def test_pause_token(tok, tok_pause, gsm):
    m = PauseToken(n_pause=3)
    check(m.sequence(tok_pause, gsm, 0), GSM_Q + [PAUSE] * 3, GSM_A, 0)
    assert m.prompt_ids(tok_pause, gsm, 9) == GSM_Q + [PAUSE] * 3
    check(PauseToken(n_pause=0).sequence(tok_pause, gsm, 0), GSM_Q, GSM_A, 0)
    with pytest.raises(ValueError, match="pause"):
        m.sequence(tok, gsm, 0)      # tokenization built without <pause>
    with pytest.raises(ValueError):
        PauseToken(n_pause=-1)


def test_icot_removal_counts(tok, gsm):
    cot = sum(GSM_S, [])              # 32 CoT tokens
    m = ICoT(tokens_removed_per_epoch=5)
    assert [m.stage(e) for e in range(8)] == [0, 5, 10, 15, 20, 25, 30, 35]
    check(m.sequence(tok, gsm, 0), GSM_Q, cot + GSM_A, 0)
    check(m.sequence(tok, gsm, 1), GSM_Q, [17, 4211, 198] + GSM_S[1] + GSM_S[2] + GSM_S[3] + GSM_A, 0)
    check(m.sequence(tok, gsm, 3), GSM_Q, [198] + GSM_S[2] + GSM_S[3] + GSM_A, 0)
    check(m.sequence(tok, gsm, 6), GSM_Q, [4211, 198] + GSM_A, 0)
    check(m.sequence(tok, gsm, 7), GSM_Q, GSM_A, 0)
    assert m.prompt_ids(tok, gsm, 7) == GSM_Q
    # a fresh optimizer at every removal, none once everything is removed
    capped = ICoT(tokens_removed_per_epoch=5, remove_all_when_remove_beyond=12)
    assert [capped.stage(e) for e in range(5)] == [0, 5, 10, math.inf, math.inf]
    check(capped.sequence(tok, gsm, 3), GSM_Q, GSM_A, 0)
    assert [capped.optimizer_reset(e) for e in range(6)] == [True, True, True, True, False, False]


def test_icot_removal_smoothing(tok, gsm):
    # lambda = ln 2: P(o) = 2^-(o+1); random.Random(0).random() = 0.844 -> o = 2
    m = ICoT(tokens_removed_per_epoch=5, removal_smoothing_lambda=math.log(2))
    assert m.tokens_to_remove(1, random.Random(0)) == 7
    check(m.sequence(tok, gsm, 1, random.Random(0)), GSM_Q, [198] + sum(GSM_S[1:], []) + GSM_A, 0)
    rng = np.random.default_rng(1)
    offsets = [m.tokens_to_remove(0, rng) for _ in range(4000)]
    assert min(offsets) == 0 and abs(np.mean([o == 0 for o in offsets]) - 0.5) < 0.04
    with pytest.raises(ValueError, match="rng"):
        m.sequence(tok, gsm, 1)


# ---- optimizer resets, registry, reference configs -----------------------------------

def test_optimizer_reset_rules():
    assert all(Coconut().optimizer_reset(e) for e in range(12))          # reference code
    by_stage = Coconut(epochs_per_stage=5, reset_optimizer="stage")
    assert [by_stage.optimizer_reset(e) for e in range(11)] == \
        [True, False, False, False, False, True, False, False, False, False, True]
    assert [CoT().optimizer_reset(e) for e in range(3)] == [True, False, False]
    assert [Coconut(reset_optimizer=False).optimizer_reset(e) for e in range(3)] == [True, False, False]
    long_first = Coconut(epochs_per_stage=2, first_stage_epochs=4, reset_optimizer="stage")
    assert [long_first.optimizer_reset(e) for e in range(9)] == \
        [True, False, False, False, True, False, True, False, True]
    with pytest.raises(ValueError):
        Coconut(reset_optimizer="sometimes")


def test_first_stage_epochs_lengthens_only_stage_zero():
    m = Coconut(epochs_per_stage=3, max_latent_stage=2, first_stage_epochs=5)
    assert [m.stage(e) for e in range(13)] == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    plain = Coconut(epochs_per_stage=3)
    assert [plain.stage(e) for e in range(7)] == [0, 0, 0, 1, 1, 1, 2]
    assert Coconut(epochs_per_stage=3, first_stage_epochs=3).stage(7) == plain.stage(7)
    assert NoCurriculum(first_stage_epochs=5).stage(0) == NoCurriculum().final_stage
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="first_stage_epochs"):
            Coconut(first_stage_epochs=bad)


def test_registry_and_reference_configs():
    assert METHODS["cot"] is CoT and METHODS["coconut"] is Coconut and METHODS["icot"] is ICoT
    assert make_method("coconut", c_thought=2) == Coconut(c_thought=2)
    with pytest.raises(ValueError, match="unknown"):
        make_method("cocunut")
    base = dict(coconut=False, cot=False, no_thoughts=False, no_cot=False, c_thought=1,
                epochs_per_stage=5, max_latent_stage=6, pad_latent_to_max=True,
                uniform_prob=0.0, reset_optimizer=True)
    prosqa = method_from_reference_config({**base, "coconut": True})
    assert prosqa == Coconut(1, 5, 6, True, 0.0, reset_optimizer=True)
    gsm = method_from_reference_config({**base, "coconut": True, "c_thought": 2,
                                        "epochs_per_stage": 3, "max_latent_stage": 3})
    assert gsm == Coconut(2, 3, 3, True, 0.0, reset_optimizer=True)
    assert method_from_reference_config({**base, "cot": True, "c_thought": 0, "reset_optimizer": False}) \
        == CoT(reset_optimizer=False)
    assert method_from_reference_config({**base, "no_cot": True}) == NoCoT(reset_optimizer=True)
    nt = method_from_reference_config({**base, "no_thoughts": True, "coconut": True})
    assert type(nt) is NoThought and nt.epochs_per_stage == 5 and nt.pad_latent_to_max
    pat = method_from_reference_config({**base, "c_thought": 2})      # the "special token" run
    assert pat == PauseAsThought(2, 5, 6, True, 0.0, reset_optimizer=True)
    assert method_from_reference_config({**base, "coconut": True, "uniform_prob": 0.3}).uniform_prob == 0.3
    assert prosqa.first_stage_epochs is None


def test_invalid_parameters():
    with pytest.raises(ValueError):
        Coconut(c_thought=0)
    with pytest.raises(ValueError):
        Coconut(epochs_per_stage=0)
    with pytest.raises(ValueError):
        Coconut(uniform_prob=1.5)
    with pytest.raises(ValueError):
        Coconut().stage(-1)
    with pytest.raises(ValueError):
        TrainingSequence([1, 2], [1], 0)


def test_longest_layout_counts_what_the_layouts_build(tok, prosqa, gsm):
    """The run's length check counts layouts from their pieces; the same as building them,
    for every stage curriculum, a subclass with its own layout included."""
    from coconut.curriculum.frontier import FrontierCoconut

    @dataclass
    class LongerLayout(Coconut):
        def layout(self, tok, example, stage):
            seq = super().layout(tok, example, stage)
            return TrainingSequence(seq.input_ids + [EOS] * 40 * stage, seq.labels + [X] * 40 * stage, seq.n_thoughts)

    methods = [Coconut(**PROSQA_CFG), Coconut(c_thought=2, max_latent_stage=3, pad_latent_to_max=False),
               NoThought(**PROSQA_CFG), PauseAsThought(**PROSQA_CFG), NoCurriculum(**PROSQA_CFG),
               LongerLayout(**PROSQA_CFG)]
    for m in methods:
        for ex in [*prosqa[:20], gsm]:
            built = max((len(m.layout(tok, ex, s).input_ids), s) for s in range(m.final_stage + 1))
            assert m.longest_layout(tok, ex) == built, (type(m).__name__, ex.question[:30])
    assert LongerLayout(**PROSQA_CFG).longest_layout(tok, prosqa[0])[0] > Coconut(**PROSQA_CFG).longest_layout(
        tok, prosqa[0])[0]
    assert FrontierCoconut.layout is not StageCurriculum.layout   # measured on its own layout


# ---- a researcher's own method, written in a notebook cell ---------------------------

def test_new_per_example_stage_sampler_by_subclassing(tok, prosqa, PQ_Q):
    @dataclass
    class CappedStages(Coconut):
        """Never schedule more stages than an example has steps."""

        def example_stage(self, example, epoch, rng=None):
            return min(self.stage(epoch), len(example.steps))

    m = CappedStages(**PROSQA_CFG)
    check(m.sequence(tok, prosqa[0], 25), PQ_Q + [BOT, LAT, LAT, LAT, EOT], PQ_A, 3)
    check(m.sequence(tok, prosqa[0], 5), PQ_Q + [BOT, LAT, EOT], PQ_S[1] + PQ_S[2] + PQ_A, 1)
    assert m.thought_mode == "continuous" and m.optimizer_reset(3)
    # everything downstream takes it as it is: e.g. the batch layout
    from coconut.collate import collate
    batch = collate([m.sequence(tok, ex, 25) for ex in prosqa[:8]], EOS, LAT)
    first = [list(row).index(LAT) for row in batch.input_ids]
    assert len(set(first)) == 1


def test_new_method_from_the_base_class(tok, gsm, monkeypatch):
    @dataclass
    class LastStepOnly(Method):
        """Train on the last step and the answer only."""
        name = "last_step_only"

        def sequence(self, tok, example, epoch, rng=None):
            last = tok.step_ids(example, len(example.steps) - 1)
            return TrainingSequence.from_parts(tok.question_ids(example), last + tok.answer_ids(example))

    monkeypatch.setitem(METHODS, "last_step_only", LastStepOnly)
    m = make_method("last_step_only")
    check(m.sequence(tok, gsm, 0), GSM_Q, GSM_S[3] + GSM_A, 0)
    assert m.prompt_ids(tok, gsm, 0) == GSM_Q and m.thought_mode == "none"
    assert [m.optimizer_reset(e) for e in range(3)] == [True, False, False]


def test_latent_prompt_for_k_sweeps(tok, gsm):
    assert latent_prompt(tok, gsm, 0) == GSM_Q + [BOT, EOT]
    assert latent_prompt(tok, gsm, 4) == GSM_Q + [BOT] + [LAT] * 4 + [EOT]
    assert latent_prompt(tok, gsm, 0, markers=False) == GSM_Q
    assert isinstance(Coconut(), StageCurriculum)
