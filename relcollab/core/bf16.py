"""bfloat16 autocast where this machine runs it, float32 with one warning where it does not.

Our CPUs differ: on a Xeon with AVX-512 BF16 or AMX, oneDNN runs `torch.lstm` under bfloat16 autocast about
twice as fast as in float32; on an AVX2-only CPU (an AMD EPYC, say) the same call raises `RuntimeError: could
not create a primitive descriptor for the LSTM forward propagation primitive`. `bf16_support` tries one tiny
LSTM call under autocast, once per device type, and `resolve_bf16` turns a user's `bf16=True` into what the
machine can do:

    >>> resolve_bf16(True, 'cpu')  # doctest: +SKIP
    True                                # or False, after one Bf16FallbackWarning that says why
"""
import functools
import warnings

import torch

__all__ = ['Bf16FallbackWarning', 'bf16_support', 'resolve_bf16']


class Bf16FallbackWarning(UserWarning):
    "bf16=True was asked for on a device that cannot run the AWD-LSTM in bfloat16: float32 is used instead."


@functools.lru_cache(maxsize=None)
def bf16_support(device_type: str = 'cpu') -> tuple:
    """`(supported, reason)`: whether `torch.lstm` runs under bfloat16 autocast on `device_type` (probed once).

    >>> bf16_support('cpu')  # doctest: +SKIP
    (True, '')
    """
    device = torch.device(device_type)
    if device.type == 'cuda' and not torch.cuda.is_available(): return False, 'CUDA is not available'
    rows, steps, size = 8, 4, 16
    x, state = torch.zeros(rows, steps, size, device=device), torch.zeros(1, rows, size, device=device)
    weights = [torch.zeros(4 * size, size, device=device), torch.zeros(4 * size, size, device=device),
               torch.zeros(4 * size, device=device), torch.zeros(4 * size, device=device)]
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            output, *_ = torch.lstm(x, (state, state), weights, True, 1, 0., False, False, True)
    except RuntimeError as error:
        return False, str(error).strip().splitlines()[0]
    if output.dtype != torch.bfloat16: return False, f'autocast left the LSTM in {output.dtype}'
    return True, ''


_warned = set()


def resolve_bf16(requested: bool, device_type: str = 'cpu') -> bool:
    """True when bfloat16 autocast was `requested` and `device_type` runs it; otherwise False, after one
    `Bf16FallbackWarning` per device type (per process) naming the reason.

    >>> resolve_bf16(False)
    False
    """
    if not requested: return False
    supported, reason = bf16_support(device_type)
    if not supported and device_type not in _warned:
        _warned.add(device_type)
        warnings.warn(f"bf16=True: this {device_type.upper()} cannot run the AWD-LSTM in bfloat16 ({reason}); "
                      "encoding in float32 instead (same vectors, no speed-up). bfloat16 needs a CPU with "
                      "AVX-512 BF16 or AMX, or a GPU that supports it.", Bf16FallbackWarning, stacklevel=3)
    return supported
