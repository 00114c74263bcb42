"""Losses for the two-tower model: pointwise MSE, or the whole in-batch score matrix (collab's view)."""
import torch
import torch.nn.functional as F
from fastai.layers import sigmoid_range
from fastai.torch_core import Module

__all__ = ['InBatchLoss', 'in_batch_targets']


def in_batch_targets(targets: torch.Tensor, same_query: torch.Tensor, same_doc: torch.Tensor) -> torch.Tensor:
    """Target of every (query i, document j) pair in a batch of row-aligned pairs with targets `targets` (bs,).

    (q_i, d_j) is a judged pair when some row k of the batch has q_k == q_i and d_k == d_j: it gets that row's
    target (the highest, if several). Any other pair is unjudged and gets 0, the bottom of the [0, 1] range,
    as an unjudged document gets in IR evaluation.

    >>> in_batch_targets(torch.tensor([1., .5]), torch.eye(2).bool(), torch.eye(2).bool())
    tensor([[1.0000, 0.0000],
            [0.0000, 0.5000]])
    """
    via = same_query[:, :, None] & same_doc[None, :, :]  # (i, k, j): row k is the pair (q_i, d_j)
    values = torch.where(via, targets[None, :, None], torch.full_like(targets, -1.)[None, :, None]).amax(dim=1)
    return values.clamp(min=0.)


class InBatchLoss(Module):
    """MSE on the in-batch score matrix plus an in-batch contrastive term, or plain MSE on (bs, 1) scores.

    In training the model returns `InBatchScores` (see `RelevanceModel.in_batch`): B queries and B documents
    give B x B scored pairs for the cost of 2B encodings. The loss is
    `mse(diagonal) + offdiag_weight * mse(off-diagonal) + contrastive_weight * cross-entropy`, the cross-entropy
    asking each query with a positive target to pick its own document among the batch's documents (query . doc
    similarities divided by `temperature`; documents of the same query that are not scored lower are left out).
    With a lexical channel, `dense_weight` x the same cross-entropy on the dense cosines alone asks the dense
    vectors to rank on their own too: without it the lexical channel does all the ranking and the dense part
    drifts to whatever complements it (nDCG@10 0.013 alone on Cranfield, against 0.36 for a dense-only model).
    In evaluation the model returns (bs, 1) scores and this is `MSELossFlat`.

    >>> loss = InBatchLoss(y_range=(0, 1))
    """
    def __init__(self, y_range=(0., 1.), offdiag_weight: float = 1., contrastive_weight: float = 1.,
                 temperature: float = 0.05, reduction: str = 'mean', dense_weight: float = 1.):
        self.y_range, self.offdiag_weight, self.contrastive_weight = tuple(y_range), offdiag_weight, contrastive_weight
        self.dense_weight = dense_weight
        self.temperature, self.reduction = temperature, reduction

    def forward(self, pred, target):
        target = target.float().view(-1)
        if not isinstance(pred, tuple):
            return F.mse_loss(pred.float().view(-1), target, reduction=self.reduction)
        logits, similarities, same_query, same_doc, dense_similarities = (*pred, None)[:5]
        scores = sigmoid_range(logits, *self.y_range)
        targets = in_batch_targets(target, same_query, same_doc)
        eye = torch.eye(len(target), dtype=torch.bool, device=target.device)
        loss = F.mse_loss(scores.diagonal(), target)
        if self.offdiag_weight and len(target) > 1:
            loss = loss + self.offdiag_weight * F.mse_loss(scores[~eye], targets[~eye])
        if self.contrastive_weight: loss = loss + self.contrastive_weight * self._contrastive(similarities, targets, eye)
        if self.dense_weight and dense_similarities is not None:
            loss = loss + self.dense_weight * self._contrastive(dense_similarities, targets, eye)
        return loss

    def _contrastive(self, similarities, targets, eye):
        own = targets.diagonal()
        rows = own > 0
        if not rows.any(): return similarities.new_zeros(())
        # a document that is as relevant to query i as its own is not a negative for it
        ignore = ~eye & (targets >= own[:, None])
        logits = (similarities / self.temperature).masked_fill(ignore, -float('inf'))[rows]
        labels = torch.arange(len(own), device=similarities.device)[rows]
        return F.cross_entropy(logits, labels)
