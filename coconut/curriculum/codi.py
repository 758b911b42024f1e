"""CODI (Shen et al. 2025, zhenyi4/codi): one model is its own teacher and student.

The teacher reads the question, the language chain and the answer and learns them by
cross-entropy; the student reads the question, `<bot>`, `num_latent` continuous
thoughts (fed back through the model's thought projection: build the model with
GPT2Config(thought_projection=H), CODI's prj_dim), `<eot>` and the answer, and learns
the answer by cross-entropy; a distillation term pulls the student's hidden states, at
every layer, toward the teacher's (detached) at one cell of each: the token before the
answer's value (CODI distils the ':' of "The answer is:", the position before the
answer's first value token in either sequence; here the last of `answer_marker_tokens`
tokens that open the answer piece, the "###" of the BPE tokenization).

From zhenyi4/codi: src/model.py (CODI.forward: the three losses, summed as
ce_loss_total + distill_loss_factor * distillation + ref_loss_factor * ref_ce_loss) and
train.py (preprocess: ref_input_ids = question + cot + answer with the question's labels
-100; the student's encoder = question + <bot>, its decoder = <eot> + answer, labels the
decoder's ids, so the first trained label is the answer's first token).

`sequence` gives the student's TrainingSequence with the teacher's and both cells
attached (CODISequence); `train_micro_batch` is the trainer's hook: it computes one
micro-batch's three losses and adds their gradients into the model's (see its doc).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from coconut.codi import LOSSES, distillation_loss_and_grad
from coconut.curriculum.method import Method
from coconut.curriculum.sequence import TrainingSequence, latent_prompt, steps_from, thought_block


@dataclass
class CODISequence(TrainingSequence):
    """The student's sequence, with the teacher's and the distilled cell of each (an
    index into its own input_ids)."""

    teacher: TrainingSequence = None
    cell: int = -1
    teacher_cell: int = -1

    @property
    def longest(self) -> int:
        return max(len(self.input_ids), len(self.teacher.input_ids))


@dataclass
class CODI(Method):
    """CODI(num_latent=6, answer_marker_tokens=1, distill_loss="smooth_l1",
    distill_div_std=True, distill_factor=1.0, teacher_factor=1.0, iterations=0,
    reset_optimizer="never"). CODI's GPT-2 scripts: num_latent 6, prj_dim 768,
    distill_loss_div_std True, smooth L1 and both factors 1 (its defaults).

    iterations >= 1 makes the student's thoughts PCCoT's Jacobi thoughts (whyNLP/PCCoT
    trains them with these very three losses; its scripts: 3 iterations, no projection,
    so build the model without one): every slot filled in parallel, `iterations` times,
    as method `pccot` fills them. 0: CODI's own sequential thoughts."""

    num_latent: int = 6
    answer_marker_tokens: int = 1
    distill_loss: str = "smooth_l1"
    distill_div_std: bool = True
    distill_factor: float = 1.0
    teacher_factor: float = 1.0
    iterations: int = 0
    reset_optimizer: object = "never"
    name: ClassVar[str] = "codi"
    trains_itself: ClassVar[bool] = True   # train_micro_batch: teacher and student, two loss calls
    loss_calls: ClassVar[int] = 2

    @property
    def thought_mode(self) -> str:
        return "jacobi" if self.iterations else "continuous"

    @property
    def thought_params(self) -> tuple[str, ...]:
        return ("iterations",) if self.iterations else ()

    def __post_init__(self):
        if not isinstance(self.iterations, int) or isinstance(self.iterations, bool) or self.iterations < 0:
            raise ValueError(f"iterations must be an integer >= 0 (0: sequential thoughts), got {self.iterations!r}")
        Method.__post_init__(self)
        if not isinstance(self.num_latent, int) or isinstance(self.num_latent, bool) or self.num_latent < 0:
            raise ValueError(f"num_latent must be an integer >= 0, got {self.num_latent!r}")
        if not isinstance(self.answer_marker_tokens, int) or self.answer_marker_tokens < 0:
            raise ValueError(f"answer_marker_tokens must be an integer >= 0, got {self.answer_marker_tokens!r}")
        if self.distill_loss not in LOSSES:
            raise ValueError(f"distill_loss must be one of {LOSSES}, got {self.distill_loss!r}")
        for key in ("distill_factor", "teacher_factor"):
            if not float(getattr(self, key)) >= 0:
                raise ValueError(f"{key} must be a number >= 0, got {getattr(self, key)!r}")

    @property
    def max_thoughts(self) -> int:
        return self.num_latent

    def sequence(self, tok, example, epoch: int, rng=None) -> CODISequence:
        question, answer = tok.question_ids(example), tok.answer_ids(example)
        if len(answer) <= self.answer_marker_tokens:
            raise ValueError(f"the answer piece has {len(answer)} tokens: no value after its "
                             f"{self.answer_marker_tokens} marker token(s)")
        student = TrainingSequence.from_parts(question + thought_block(tok, self.num_latent), answer,
                                              self.num_latent)
        teacher = TrainingSequence.from_parts(question, steps_from(tok, example, 0) + answer)
        # the answer's first value token follows its marker: distil the cell before it
        # (with no marker, the token before the answer piece: <eot>, the chain's last)
        before_value = self.answer_marker_tokens - 1
        return CODISequence(student.input_ids, student.labels, student.n_thoughts, teacher=teacher,
                            cell=len(student.input_ids) - len(answer) + before_value,
                            teacher_cell=len(teacher.input_ids) - len(answer) + before_value)

    def prompt_ids(self, tok, example, epoch: int) -> list[int]:
        return latent_prompt(tok, example, self.num_latent)

    def train_micro_batch(self, model, sequences, pad_id: int, latent_id: int, thoughts, grad_scale: float) -> dict:
        """One micro-batch of CODISequences: adds into model.grads the gradient of
        grad_scale * (student CE + distill_factor * distillation + teacher_factor *
        teacher CE), and returns the three terms (unscaled) and the student's
        supervised count. Two core calls: the teacher's CE and gradient, handing back
        its hidden states at the teacher cells (no gradient flows into them: CODI's
        detach); then the student's, whose hidden states at the student cells go to
        the distillation term between forward and backward, its gradient injected."""
        from coconut.collate import collate   # here: collate imports the curriculum package
        teacher = collate([s.teacher for s in sequences], pad_id, latent_id)
        t_cells = self._cells(teacher, [s.teacher_cell for s in sequences])
        t_loss, _, t_hidden = model.loss_and_count(
            teacher.input_ids, teacher.labels, teacher.attention_mask, teacher.position_ids,
            thoughts=thoughts.with_mode("none"), grad_scale=grad_scale * float(self.teacher_factor),
            hidden_cells=t_cells)
        student = collate(sequences, pad_id, latent_id)
        terms = {}

        def distillation_grad(hidden):
            value, grad = distillation_loss_and_grad(hidden, t_hidden, loss=self.distill_loss,
                                                     div_std=self.distill_div_std)
            terms["distill_loss"] = value
            return grad * np.float32(grad_scale * float(self.distill_factor))

        s_loss, count, _ = model.loss_and_count(
            student.input_ids, student.labels, student.attention_mask, student.position_ids, thoughts=thoughts,
            grad_scale=grad_scale, hidden_cells=self._cells(student, [s.cell for s in sequences]),
            hidden_grad=distillation_grad)
        return {"ce_loss": s_loss, "teacher_ce_loss": t_loss, "count": count, **terms}

    @staticmethod
    def _cells(batch, positions) -> np.ndarray:
        """(example, column) of each sequence's position: collate only left-pads before a row's tokens."""
        left = np.argmax(batch.attention_mask, axis=1)
        return np.array([(b, int(left[b]) + p) for b, p in enumerate(positions)], dtype=np.int64)
