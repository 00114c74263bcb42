"""`model_fingerprint`: which model built a set of document vectors (stored with every `DocIndex`)."""
import hashlib
import weakref

import torch

__all__ = ['model_fingerprint']

_DIGESTS = weakref.WeakKeyDictionary()  # document projection -> (cheap summary of its tensors, sha256 digest)


def model_fingerprint(learn) -> str:
    """sha256 of the document projection's weights and buffers, the vocabulary size and the projection size.

    The document projection is trained in every stage, so any training changes it; an index built before
    (or by another model) then no longer matches. It does not hash the (large) document tower itself.
    The digest is computed again only when a float64 sum of some tensor (or where it lives) has changed
    since the last call, so checking it before every search costs microseconds.

    >>> len(model_fingerprint(learn))  # doctest: +SKIP
    64
    """
    doc_proj = learn.model.head.doc_proj
    state = sorted(doc_proj.state_dict().items())
    extra = f"vocab={len(learn.dls.vocab)};proj={doc_proj[-1].out_features}"
    with torch.no_grad():
        summary = (extra, *((name, tensor.data_ptr(), tuple(tensor.shape), tensor.sum(dtype=torch.float64).item())
                            for name, tensor in state))
    cached = _DIGESTS.get(doc_proj)
    if cached is not None and cached[0] == summary: return cached[1]
    digest = hashlib.sha256()
    for name, tensor in state:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(extra.encode())
    _DIGESTS[doc_proj] = (summary, digest.hexdigest())
    return digest.hexdigest()
