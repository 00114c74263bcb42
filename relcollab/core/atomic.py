"""Files and directories that are either whole or absent: write under a temporary name, flush, rename.

A kill at any moment leaves the previous version (or nothing), never half a file. Reading them back:
`file_sha256` (is it the file that was written?) and `read_json` (a clear error when it is missing or damaged).
Used by checkpoints (`relcollab.training.checkpoint`), the pickle-free model format (`relcollab.retrieval.pretrained`) and indexes.
"""
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import torch

__all__ = ['atomic_write', 'atomic_save', 'atomic_directory', 'file_sha256', 'read_json']


def _temporary_name(path: Path) -> Path:
    "A unique hidden name beside `path` (created with the usual permissions, unlike tempfile's 0600)."
    return path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')


def _fsync(path: Path):
    try: descriptor = os.open(path, os.O_RDONLY)
    except OSError: return  # some file systems do not open directories
    try: os.fsync(descriptor)
    except OSError: pass
    finally: os.close(descriptor)


def atomic_write(path, write) -> Path:
    """Calls `write(handle)` on a temporary file beside `path`, flushes it to disk, then renames it to `path`.

    >>> atomic_write('notes.txt', lambda handle: handle.write(b'whole or absent'))  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        with open(tmp, 'xb') as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)
    return path


def atomic_save(obj, path) -> Path:
    "`torch.save(obj, path)` that never leaves a half-written `path`: the old file stays until the new one is whole."
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_directory(path, fill) -> Path:
    """Calls `fill(tmp_dir)` on a new temporary directory beside `path`, flushes its files, then puts it in
    place of `path`. An existing `path` is moved aside just before and deleted after, so `path` is a complete
    directory at every moment but the one between two renames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = _temporary_name(path), None
    tmp.mkdir()
    try:
        fill(tmp)
        for file in tmp.iterdir(): _fsync(file)
        if path.exists():
            old = _temporary_name(path).with_suffix('.old')
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None: shutil.rmtree(old, ignore_errors=True)
    _fsync(path.parent)
    return path


def file_sha256(path) -> str:
    """The sha256 hex digest of the bytes of file `path` (read in 1 MiB blocks).

    >>> file_sha256('model/model.safetensors')[:12]  # doctest: +SKIP
    '5d1f0c2a9e4b'
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''): digest.update(block)
    return digest.hexdigest()


def read_json(path, error=ValueError, missing: str = '', corrupt: str = ''):
    """The JSON value in UTF-8 file `path`. A missing file raises `error(f"{path}: missing{missing}")`; text that
    is not valid UTF-8 JSON raises `error(f"{path}: not valid JSON (...){corrupt}")`: `missing` and `corrupt`
    say what to do.

    >>> read_json('index/ids.json', IndexFileError, corrupt='. Rebuild the index.')  # doctest: +SKIP
    ['d1', 'd2']
    """
    path = Path(path)
    if not path.is_file(): raise error(f"{path}: missing{missing}")
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise error(f"{path}: not valid JSON ({problem}){corrupt}") from None
