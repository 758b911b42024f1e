"""The CODI method (coconut/curriculum/codi.py): its student and teacher sequences and
distilled cells on a real example, and one micro-batch of its training hook against
the PyTorch re-enactment (teacher CE + student CE through the thought projection +
CODI's distillation term on the teacher's detached states). Tolerances as
tests/test_thought_projection.py: the losses within 1e-5 relative (the distillation
term 1e-4), every gradient within 1e-4 of its largest."""
import dataclasses

import numpy as np
import pytest
import torch

from coconut.collate import collate
from coconut.curriculum.codi import CODI, CODISequence
from coconut.curriculum.sequence import TrainingSequence
from coconut.data import official
from coconut.reference import torch_codi
from coconut.tokenizer.bpe import GPT2Tokenizer
from coconut.tokenizer.text import TextTokenization
from hf_bridge import hf_twin
from test_curriculum import BOT, EOT, GSM_A, GSM_Q, GSM_S, LAT, X
from test_thought_projection import projected_model
from test_thoughts import EOS, SPEC, assert_grads_close, model_for_thoughts
from test_thoughts import BOT as S_BOT, EOT as S_EOT, LAT as S_LAT


def test_student_and_teacher_sequences_and_cells():
    tok = TextTokenization(GPT2Tokenizer())
    seq = CODI(num_latent=3).sequence(tok, official("gsm8k", "valid")[0], epoch=0)
    steps = sum(GSM_S, [])
    assert seq.input_ids == GSM_Q + [BOT, LAT, LAT, LAT, EOT] + GSM_A
    assert seq.labels == [X] * (len(GSM_Q) + 5) + GSM_A and seq.n_thoughts == 3
    assert seq.teacher.input_ids == GSM_Q + steps + GSM_A
    assert seq.teacher.labels == [X] * len(GSM_Q) + steps + GSM_A
    # both cells hold "###", the token before the answer's value (CODI's ':' of "The answer is:")
    assert seq.input_ids[seq.cell] == 21017 == seq.teacher.input_ids[seq.teacher_cell]
    before = CODI(num_latent=3, answer_marker_tokens=0).sequence(tok, official("gsm8k", "valid")[0], epoch=0)
    assert before.input_ids[before.cell] == EOT and before.teacher.input_ids[before.teacher_cell] == steps[-1]
    assert CODI(num_latent=2).prompt_ids(tok, official("gsm8k", "valid")[0], 0) == GSM_Q + [BOT, LAT, LAT, EOT]
    for bad in (dict(num_latent=-1), dict(distill_loss="l1"), dict(distill_factor=-1.0), dict(iterations=-1),
                dict(iterations=True)):
        with pytest.raises(ValueError):
            CODI(**bad)


def codi_sequence(rng, q_len, k, n_steps, tail_len):
    q = rng.integers(0, 96, q_len).tolist()
    steps = rng.integers(0, 96, n_steps).tolist()
    answer = [7] + rng.integers(0, 96, tail_len).tolist() + [EOS]   # 7 plays "###"
    student = TrainingSequence.from_parts(q + [S_BOT] + [S_LAT] * k + [S_EOT], answer, k)
    teacher = TrainingSequence.from_parts(q, steps + answer)
    return CODISequence(student.input_ids, student.labels, k, teacher=teacher,
                        cell=len(student.input_ids) - len(answer), teacher_cell=len(teacher.input_ids) - len(answer))


@pytest.mark.parametrize("k, iterations", [(0, 0), (1, 0), (3, 0), (4, 1), (4, 3)])
def test_one_micro_batch_equals_the_reference(k, iterations):
    """iterations >= 1: PCCoT's training, the student's thoughts Jacobi thoughts and the
    model without a projection."""
    rng = np.random.default_rng(k + 10 * iterations)
    seqs = [codi_sequence(rng, int(rng.integers(2, 7)), k, int(rng.integers(1, 6)), int(rng.integers(1, 4)))
            for _ in range(3)]
    method = CODI(num_latent=k, distill_factor=0.7, teacher_factor=0.5, iterations=iterations)
    model = model_for_thoughts(seed=k) if iterations else projected_model(seed=k)
    spec = dataclasses.replace(SPEC, mode="jacobi", iterations=iterations) if iterations else SPEC
    assert method.thought_mode == spec.mode
    model.zero_grad()
    got = method.train_micro_batch(model, seqs, EOS, S_LAT, spec, grad_scale=0.5)
    grads = {n: g.astype(np.float64) for n, g in model.grads.items()}

    hf = hf_twin(model)
    prj = None if iterations else torch_codi.projection_twin(model)
    t, s = collate([q.teacher for q in seqs], EOS, S_LAT), collate(seqs, EOS, S_LAT)
    t_cells = np.array([(b, int(np.argmax(t.attention_mask[b])) + q.teacher_cell) for b, q in enumerate(seqs)])
    s_cells = np.array([(b, int(np.argmax(s.attention_mask[b])) + q.cell) for b, q in enumerate(seqs)])
    t_ce, _, t_hidden = torch_codi.codi_forward(hf, None, t.input_ids, t.attention_mask, t.position_ids, t.labels,
                                                S_LAT, t_cells)
    s_ce, _, s_hidden = torch_codi.codi_forward(hf, prj, s.input_ids, s.attention_mask, s.position_ids, s.labels,
                                                S_LAT, s_cells, iterations=iterations)
    ref = t_hidden.detach()
    distill = sum(torch.nn.functional.smooth_l1_loss(s_hidden[:, j], ref[:, j]) / ref[:, j].std()
                  for j in range(ref.shape[1])) / ref.shape[1]
    hf.zero_grad()
    (0.5 * (s_ce + 0.7 * distill + 0.5 * t_ce)).backward()
    want = {n: p.grad.double().numpy() for n, p in hf.named_parameters()}
    want.update({"thought_projection." + n: np.zeros(tuple(p.shape)) if p.grad is None else p.grad.double().numpy()
                 for n, p in (prj.named_parameters() if prj else ())})
    assert abs(got["ce_loss"] - s_ce.item()) <= 1e-5 * s_ce.item()
    assert abs(got["teacher_ce_loss"] - t_ce.item()) <= 1e-5 * t_ce.item()
    assert abs(got["distill_loss"] - distill.item()) <= 1e-4 * distill.item()
    assert got["count"] == int((s.labels[:, 1:] != -100).sum())
    assert_grads_close(grads, want)


def test_codi_trains_from_a_config_resumes_bitwise_and_evaluates(tmp_path, capsys):
    """method: codi end to end on the 40-example ProsQA run: the student's loss falls, a
    resumed run ends on the same weights, coconut eval scores it, and a recipe that
    rewrites training sequences (which would drop the teacher) is refused."""
    import yaml

    from coconut.cli import main
    from coconut.run_config import ConfigError
    from coconut.train import Trainer, train
    from test_train import BASE, config, metrics

    kw = dict(method="codi", method_options={"num_latent": 2}, thought_projection=16, dropout=0.0, num_epochs=3)
    straight = train(config(tmp_path, "straight", **kw))
    losses = [line["train_loss"] for line in metrics(straight.save_dir)]
    assert losses[-1] < losses[0] - 0.5
    assert straight.model.config.thought_projection == 16
    train(config(tmp_path, "split", **{**kw, "num_epochs": 2}))
    resumed = train(config(tmp_path, "split", **kw), resume=2)
    assert np.array_equal(straight.model.param_block, resumed.model.param_block)
    path = tmp_path / "codi.yaml"
    path.write_text(yaml.safe_dump({**BASE, **kw, "save_path": str(tmp_path), "name": "straight"}))
    assert main(["eval", str(path)]) == 0
    assert "accuracy " in capsys.readouterr().out
    with pytest.raises(ConfigError, match="predict_past_eot rewrites each training sequence; method 'codi'"):
        Trainer(config(tmp_path, "refused", recipe={"predict_past_eot": True}, **kw))
    with pytest.raises(ConfigError, match="method codi has jacobi thoughts, which take no projection"):
        Trainer(config(tmp_path, "refused", **{**kw, "method_options": {"num_latent": 2, "iterations": 3}}))
    pccot = train(config(tmp_path, "pccot", **{**kw, "thought_projection": 0, "num_epochs": 2,
                                                   "method_options": {"num_latent": 2, "iterations": 3}}))
    assert metrics(pccot.save_dir)[-1]["train_loss"] < metrics(pccot.save_dir)[0]["train_loss"]
