"""The two-tower model: AWD-LSTM encoders, masked concat pooling, projections, a dot product."""
import math

import torch
import torch.nn.functional as F
from fastai.layers import sigmoid_range
from fastai.text.models.awdlstm import AWD_LSTM
from fastai.text.models.core import SentenceEncoder
from fastai.torch_core import Module, params
from fastcore.foundation import L
from torch import nn

__all__ = ['masked_concat_pool', 'TextTower', 'RelevanceHead', 'RelevanceModel', 'get_relevance_model',
           'relevance_split']


def masked_concat_pool(output: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """[last, max, mean] of `output` (bs, sl, d) over real tokens; `pad_mask` is True at padding (at the end).

    >>> masked_concat_pool(torch.ones(2, 3, 4), torch.tensor([[0, 0, 1], [0, 0, 0]]).bool()).shape
    torch.Size([2, 12])
    """
    real = ~pad_mask
    lengths = real.sum(dim=1).clamp(min=1)
    last = output[torch.arange(output.size(0), device=output.device), lengths - 1]
    max_pool = output.masked_fill(pad_mask[:, :, None], -float('inf')).max(dim=1).values
    mean_pool = output.masked_fill(pad_mask[:, :, None], 0.).sum(dim=1) / lengths[:, None].to(output.dtype)
    return torch.cat([last, max_pool, mean_pool], dim=1)


class TextTower(Module):
    """Encodes padded token ids (bs, sl) into one pooled vector per row (bs, 3*emb_sz).

    fastai's `SentenceEncoder` expects rows sorted longest first; the tower sorts them and restores the
    caller's order, so a text's vector does not depend on the rest of its batch.
    """
    def __init__(self, encoder: SentenceEncoder):
        self.encoder = encoder

    @property
    def awd_lstm(self) -> AWD_LSTM: return self.encoder.module

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lengths = (tokens != self.encoder.pad_idx).sum(dim=1)
        order = torch.argsort(lengths, descending=True, stable=True)
        output, pad_mask = self.encoder(tokens[order])
        pooled = masked_concat_pool(output, pad_mask)
        return pooled[torch.argsort(order)]


class RelevanceHead(Module):
    """Projects each side's pooled vector to unit length; score = sigmoid_range(scale * query . doc + bias).

    Unit vectors bound the logits by the learned `scale`, so a large learning rate cannot push the sigmoid
    into saturation, where MSE has no gradient and every score collapses to a constant. BatchNorm centres the
    pooled features first: raw LSTM features share a large common direction that makes every cosine alike.
    In eval mode it uses running statistics, so a text's vector never depends on its batch.
    """
    def __init__(self, n_in: int, proj_sz: int, y_range=(0., 1.), p: float = 0.1, init_scale: float = 1.):
        self.query_proj = nn.Sequential(nn.BatchNorm1d(n_in), nn.Dropout(p), nn.Linear(n_in, proj_sz))
        self.doc_proj = nn.Sequential(nn.BatchNorm1d(n_in), nn.Dropout(p), nn.Linear(n_in, proj_sz))
        # Same start on both sides: with both towers loaded from one LM encoder, the untrained model already
        # scores by the cosine of the two texts' LM features, a lexical-and-topical signal to refine.
        self.doc_proj.load_state_dict(self.query_proj.state_dict())
        self.log_scale = nn.Parameter(torch.tensor([math.log(init_scale)]))
        self.bias = nn.Parameter(torch.zeros(1))
        self.y_range = tuple(y_range)

    def project_query(self, pooled): return F.normalize(self.query_proj(pooled), dim=-1)
    def project_doc(self, pooled): return F.normalize(self.doc_proj(pooled), dim=-1)

    def score(self, query_vectors: torch.Tensor, doc_vectors: torch.Tensor) -> torch.Tensor:
        "Scores (bs, 1) of row-aligned projected vectors."
        logits = (query_vectors * doc_vectors).sum(dim=1, keepdim=True) * self.log_scale.exp() + self.bias
        return sigmoid_range(logits, *self.y_range)


class RelevanceModel(Module):
    "Two text towers (or one shared), a projection head and a dot product: forward(query, doc) -> (bs, 1)."
    def __init__(self, query_tower: TextTower, doc_tower: TextTower, head: RelevanceHead):
        self.query_tower, self.doc_tower, self.head = query_tower, doc_tower, head

    @property
    def shared(self) -> bool: return self.query_tower is self.doc_tower

    def encode_query(self, tokens): return self.head.project_query(self.query_tower(tokens))
    def encode_doc(self, tokens): return self.head.project_doc(self.doc_tower(tokens))

    def forward(self, query_tokens, doc_tokens):
        return self.head.score(self.encode_query(query_tokens), self.encode_doc(doc_tokens))

    def reset(self):
        for tower in (self.query_tower, self.doc_tower): tower.encoder.reset()


def _tower(vocab_sz: int, config: dict, bptt: int) -> TextTower:
    return TextTower(SentenceEncoder(bptt=bptt, module=AWD_LSTM(vocab_sz, **config), pad_idx=config['pad_token']))


def get_relevance_model(vocab_sz: int, config: dict, drop_mult: float = 1., shared: bool = False,
                        proj_sz: int = 256, y_range=(0., 1.), bptt: int = 72) -> RelevanceModel:
    """Builds the two-tower model from an AWD-LSTM `config` (see `relevance_config`).

    >>> from relcollab.configs import relevance_config
    >>> get_relevance_model(100, relevance_config('small')).head.bias.shape
    torch.Size([1])
    """
    hparams = dict(vocab_sz=vocab_sz, config=dict(config), drop_mult=drop_mult, shared=shared, proj_sz=proj_sz,
                   y_range=list(y_range), bptt=bptt)
    config = {k: (v * drop_mult if k.endswith('_p') else v) for k, v in config.items()}
    head_p = config.pop('output_p', 0.1)
    query_tower = _tower(vocab_sz, config, bptt)
    doc_tower = query_tower if shared else _tower(vocab_sz, config, bptt)
    head = RelevanceHead(3 * config['emb_sz'], proj_sz, y_range=y_range, p=head_p)
    model = RelevanceModel(query_tower, doc_tower, head)
    model.hparams = hparams  # JSON-able: get_relevance_model(**model.hparams) rebuilds this architecture
    return model


def relevance_split(model: RelevanceModel):
    """ULMFiT parameter groups: embeddings, each LSTM layer (both towers together), then the head."""
    towers = [model.query_tower] if model.shared else [model.query_tower, model.doc_tower]
    lstms = [tower.awd_lstm for tower in towers]
    groups = [nn.ModuleList([nn.Sequential(m.encoder, m.encoder_dp) for m in lstms])]
    groups += [nn.ModuleList([nn.Sequential(m.rnns[i], m.hidden_dps[i]) for m in lstms])
               for i in range(lstms[0].n_layers)]
    groups.append(model.head)
    return L(groups).map(params)
