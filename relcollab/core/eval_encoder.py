"""fastai's `SentenceEncoder` over an AWD-LSTM in eval mode, without its per-call overhead.

In eval mode every dropout is the identity, yet fastai's `WeightDropout` copies each LSTM's hidden-to-hidden
weights twice per chunk (on `reset` and on every forward) and `AWD_LSTM` resizes its stored hidden state
per call. For a short query that overhead is most of the time. `eval_sentence_encoder` runs the same
computation (embedding, then each LSTM layer, chunk by chunk with the state carried over, rows dropped as
they end) on the raw weights, and gives the same outputs at every real token (tested to 1e-6).
"""
import torch
import torch.nn.functional as F
from fastai.text.models.awdlstm import AWD_LSTM, WeightDropout
from fastai.text.models.core import SentenceEncoder
from torch import nn

__all__ = ['supports_eval_path', 'eval_sentence_encoder']

EVAL_CHUNK = 16  # tokens per LSTM call in a batch: ended rows leave it this often (fastai: every bptt=72)
SHAPE_STEP = 8  # row counts and lengths are rounded up to multiples of this (a bounded set of input shapes)


def supports_eval_path(encoder) -> bool:
    """True for the encoders `eval_sentence_encoder` reproduces: a `SentenceEncoder` without `max_len` over a
    one-directional `AWD_LSTM` whose layers are fastai's `WeightDropout` around a one-layer `nn.LSTM`.

    >>> supports_eval_path(SentenceEncoder(72, AWD_LSTM(100, 8, 16, 2)))
    True
    """
    if not (isinstance(encoder, SentenceEncoder) and encoder.max_len is None and isinstance(encoder.module, AWD_LSTM)):
        return False
    awd = encoder.module
    return awd.n_dir == 1 and all(
        isinstance(rnn, WeightDropout) and list(rnn.layer_names) == ['weight_hh_l0'] and isinstance(rnn.module, nn.LSTM)
        and rnn.module.num_layers == 1 and not rnn.module.bidirectional and rnn.module.batch_first
        and rnn.module.bias and not rnn.module.proj_size for rnn in awd.rnns)


def _layer_weights(rnn: WeightDropout) -> list:
    "The LSTM's flat weights, with the raw hidden-to-hidden matrix (weight dropout is off in eval mode)."
    lstm = rnn.module
    return [lstm.weight_ih_l0, rnn.weight_hh_l0_raw, lstm.bias_ih_l0, lstm.bias_hh_l0]


def _round_up(n: int, step: int) -> int: return -(-n // step) * step


def eval_sentence_encoder(encoder: SentenceEncoder, tokens: torch.Tensor, chunk: int = EVAL_CHUNK) -> tuple:
    """`(output, pad_mask)` as `encoder(tokens)` gives them in eval mode (outputs at padding may differ), for rows
    sorted longest first and padded at the end (as `TextTower` passes them).

    A batch runs `chunk` tokens per LSTM call and rows that have ended leave it between calls (fastai: every
    `bptt` tokens), so a batch of texts of unequal lengths wastes little work on padding; one text runs in one
    call per layer (each call has a fixed cost). Row counts and lengths are rounded up to multiples of
    `SHAPE_STEP`: oneDNN keeps a compiled kernel per input shape, and with every shape a new one, memory grew
    as a collection streamed through (until oneDNN's cache of kernels filled up).

    >>> encoder = SentenceEncoder(72, AWD_LSTM(100, 8, 16, 2)).eval()
    >>> eval_sentence_encoder(encoder, torch.tensor([[2, 5, 7], [2, 5, 1]]))[0].shape
    torch.Size([2, 3, 8])
    """
    awd, pad_mask = encoder.module, tokens == encoder.pad_idx
    layers = [(rnn.module.hidden_size, _layer_weights(rnn)) for rnn in awd.rnns]
    (bs, sl), lengths = tokens.shape, (~pad_mask).sum(dim=1).tolist()
    width = _round_up(sl, SHAPE_STEP)
    if width > sl: tokens = F.pad(tokens, (0, width - sl), value=encoder.pad_idx)
    step = width if bs == 1 else chunk
    output, states = None, [None] * len(layers)
    for start in range(0, width, step):
        n_live = sum(length > start for length in lengths)  # rows still going (sorted longest first)
        if n_live == 0: break
        n_rows = min(bs, _round_up(n_live, SHAPE_STEP))  # the extra rows have ended: they run on padding
        x = awd.encoder(tokens[:n_rows, start:start + step])
        for layer, (hidden_size, weights) in enumerate(layers):
            state = states[layer]
            state = (x.new_zeros(1, n_rows, hidden_size),) * 2 if state is None else tuple(s[:, :n_rows] for s in state)
            x, *states[layer] = torch.lstm(x, state, weights, True, 1, 0., False, False, True)
        if output is None: output = x.new_zeros(bs, width, x.size(-1))
        output[:n_rows, start:start + x.size(1)] = x
    return output[:, :sl], pad_mask
