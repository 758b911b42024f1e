"""The examples each epoch of a run trains on: the run's training set, or with
`generate.fresh_each_epoch` the epoch's own part of the generator's stream, so that no
question is seen twice. With `data_ahead` a forked process draws epoch e + 1's questions
while epoch e trains (the same questions, so the same bits: the stream depends on the
index alone).

    data = EpochData(cfg, train_set, method, tok, n_positions, workers)
    examples = data.examples(epoch)
    data.close()                 # an interrupted run: the next epoch's draw is not needed
"""
from __future__ import annotations

from coconut.build import check_lengths
from coconut.data import generate
from coconut.forked import Background


class EpochData:
    def __init__(self, cfg, train_set: list, method, tok, n_positions: int, workers: int):
        self.cfg, self.train_set, self.method, self.tok = cfg, train_set, method, tok
        self.n_positions, self.workers = n_positions, workers
        g = cfg.generate
        self.fresh = g is not None and g.fresh_each_epoch
        self.ahead = None   # (epoch, Background drawing its questions)

    def examples(self, epoch: int) -> list:
        ahead, self.ahead = self.ahead, None
        if self.fresh and epoch > 0 and ahead is not None and ahead[0] == epoch:
            examples = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].close()
            examples = self.draw(epoch, self.workers) if self.fresh and epoch > 0 else self.train_set
        if self.fresh and self.cfg.data_ahead and epoch + 1 < self.cfg.num_epochs:
            # one process: a pool worker cannot fork workers of its own
            self.ahead = (epoch + 1, Background(lambda: self.draw(epoch + 1, 1)))
        if examples is self.train_set:
            return examples
        self.tok.clear_cache()   # else every epoch's questions would stay alive in it
        self.tok.encode_all(examples, self.workers)
        check_lengths(self.method, self.tok, examples,
                      f"generated {self.cfg.generate.dataset} training set of epoch {epoch + 1}", [epoch],
                      self.n_positions)
        return examples

    def draw(self, epoch: int, workers: int) -> list:
        """Epoch `epoch`'s part of the generator's stream: after the first set and the
        validation examples; only as many as train_size keeps."""
        g = self.cfg.generate
        start = g.n + g.val_n + (epoch - 1) * g.n
        return generate(g.dataset, min(g.n, self.cfg.train_size or g.n), g.seed, start=start, workers=workers)

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead[1].close()
            self.ahead = None
