"""evaluate / k_sweep: prompts, the reference scoring of prompt + output, records."""
import json

import numpy as np

import coconut
from coconut.curriculum import CoT, Coconut
from coconut.data import generate_prosqa
from coconut.evaluate import evaluate, greedy_reference, k_sweep
from coconut.tokenizer.symbolic import ProsQASymbolic

EXAMPLES = generate_prosqa(3, 5)


def tiny(tok, seed=0):
    model = coconut.GPT2(coconut.GPT2Config(1, 2, 16, tok.vocab_size, 256, dropout=0.0), seed=seed)
    model.thoughts = tok.thought_spec("continuous")
    return model


class Scripted:
    """A stand-in model whose `generate` returns chosen continuations."""
    def __init__(self, outputs, n_positions=256):
        self.outputs, self.training, self.prompts = outputs, True, None
        self.config = coconut.GPT2Config(1, 1, 8, 50, n_positions)

    def eval(self):
        self.training = False

    def generate(self, prompts, max_new_tokens, **kw):
        self.prompts, self.kw = prompts, kw
        return self.outputs


def test_scoring_records_and_jsonl(tmp_path):
    tok = ProsQASymbolic()
    right = [tok.answer_id, EXAMPLES[0].target]
    wrong = [tok.answer_id, EXAMPLES[1].neg_target, tok.sep_id]
    model = Scripted([right, wrong, []])
    result = evaluate(model, tok, Coconut(max_latent_stage=6, pad_latent_to_max=True), EXAMPLES, 8, 4)
    assert [r.correct for r in result.records] == [True, False, False]
    assert result.accuracy == 1 / 3 and result.mean_new_tokens == 5 / 3
    assert result.records[0].output == "### " + EXAMPLES[0].answer
    assert all(r.n_thoughts == 6 for r in result.records)          # final stage: 6 thoughts
    assert model.kw["thoughts"] == tok.thought_spec("continuous") and model.kw["eos_id"] == tok.eos_id
    assert model.training is True                                  # training flag restored
    result.write_jsonl(str(tmp_path / "r.jsonl"))
    rows = [json.loads(l) for l in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert rows[0]["gold"] == EXAMPLES[0].answer and rows[0]["correct"] is True and rows[1]["n_tokens"] == 3


def test_method_prompt_at_an_epoch_and_k_prompts():
    tok = ProsQASymbolic()
    model = Scripted([[tok.eos_id]] * 3)
    evaluate(model, tok, Coconut(epochs_per_stage=1, max_latent_stage=6, pad_latent_to_max=True), EXAMPLES, 8,
             epoch=2)
    assert [p.count(tok.latent_id) for p in model.prompts] == [2, 2, 2]
    evaluate(model, tok, CoT(), EXAMPLES, 8)
    assert model.prompts[0] == tok.question_ids(EXAMPLES[0]) and model.kw["thoughts"].mode == "none"
    sweep = k_sweep(model, tok, EXAMPLES, ks=[0, 3], max_new_tokens=8)
    assert sorted(sweep) == [0, 3] and [r.n_thoughts for r in sweep[3].records] == [3, 3, 3]


def test_reference_greedy_decoding_rule():
    tok = ProsQASymbolic()
    model = tiny(tok, seed=3)
    prompt = tok.question_ids(EXAMPLES[0]) + [tok.bot_id, tok.latent_id, tok.eot_id]
    out = greedy_reference(model, prompt, 5, eos_id=tok.eos_id, thoughts=tok.thought_spec("continuous"))
    ids = list(prompt)
    for t in out:   # every token is the argmax after the tokens before it
        logits = model.forward(np.asarray([ids]), thoughts="continuous")
        assert t == int(np.argmax(logits[0, -1]))
        ids.append(t)
    assert len(out) <= 5 and tok.eos_id not in out[1:]
