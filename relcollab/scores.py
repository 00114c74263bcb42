"""Score normalization: user units <-> the [0, 1] scale the model is trained on."""
import math

from fastai.data.transforms import Transform

__all__ = ['ScaleScore', 'score_range_of']


def score_range_of(scores, score_range=None) -> tuple:
    """The rule: `score_range` (lo, hi) when given, else the min and max of the training scores.

    >>> score_range_of([0, 1, 4])
    (0.0, 4.0)
    """
    if score_range is None: score_range = (min(scores), max(scores))
    lo, hi = (float(v) for v in score_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"score_range must be two finite numbers with low < high, got {score_range}.")
    return lo, hi


class ScaleScore(Transform):
    """Maps a score in user units to [0, 1] (`encodes`) and back (`decodes`).

    >>> ScaleScore(0, 4).decode(ScaleScore(0, 4)(3.0))
    3.0
    """
    order = 10

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = float(lo), float(hi)

    def encodes(self, score): return (score - self.lo) / (self.hi - self.lo)
    def decodes(self, score): return score * (self.hi - self.lo) + self.lo
