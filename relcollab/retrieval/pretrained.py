"""A pickle-free model format: `learn.save_pretrained(dir)` and `load_pretrained(dir)`.

    learn.save_pretrained('rel_model')              # model.safetensors + config.json + vocab.json
    learn = load_pretrained('rel_model')            # never unpickles; on the CPU; scores exactly as before
    learn.predict('heat transfer in slabs', doc_text)[0]
    learn = load_model(Path('rel_model'))           # a model directory or an exported learner (.pkl), as the CLI does

On disk: `model.safetensors` (the weights, safetensors: tensors only, no code), `config.json` (format version,
the model's constructor arguments `model.hparams`, tokenizer settings, score range, column names, the
relcollab version and the weights' sha256) and `vocab.json` (the token list). The directory is written under
a temporary name and renamed into place, so it is either complete or absent. Loading checks the format
version, the checksum and every tensor's shape before using anything. `learn.export` / `load_learner` (pickle)
stay for fastai users; use this format for files that come from elsewhere.
"""
import json
import shutil
from pathlib import Path

from fastai.losses import MSELossFlat
from fastai.metrics import SpearmanCorrCoef, rmse
from fastai.torch_core import default_device
from fastcore.basics import patch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model as load_safetensors_model
from safetensors.torch import save_file

from ..core.atomic import atomic_directory, file_sha256, read_json
from ..core.data import RelevanceDataLoaders
from ..training.learner import RelevanceLearner
from ..core.model import get_relevance_model, relevance_split
from ..core.validation import RelevanceDataError

__all__ = ['MODEL_FORMAT_VERSION', 'FORMAT_VERSION', 'PretrainedFormatError', 'load_pretrained', 'is_pretrained_dir',
           'check_save_target']

MODEL_FORMAT_VERSION = 1  # of config.json + vocab.json + model.safetensors (indexes: INDEX_FORMAT_VERSION)
FORMAT_VERSION = MODEL_FORMAT_VERSION  # its older name, kept (relcollab.all's FORMAT_VERSION is this one)
WEIGHTS_FILE, CONFIG_FILE, VOCAB_FILE = 'model.safetensors', 'config.json', 'vocab.json'
CONFIG_KEYS = ('format_version', 'hparams', 'tokenizer', 'score_range', 'columns', 'weights_sha256')


class PretrainedFormatError(RelevanceDataError):
    "A pretrained directory is missing a file, truncated, corrupted, from a newer format or does not fit."


def is_pretrained_dir(path) -> bool:
    "True when `path` is a directory holding a `config.json` (a model written by `save_pretrained`)."
    return Path(path).is_dir() and (Path(path)/CONFIG_FILE).is_file()


def check_save_target(path) -> Path:
    "`path` as a Path when a model may be saved there (new, empty, or a saved model); else `FileExistsError`."
    path = Path(path)
    if path.exists() and not is_pretrained_dir(path) and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not a model written by save_pretrained: choose a new path.")
    return path


def model_config(learn) -> dict:
    "What `load_pretrained` needs besides the weights and the vocabulary (JSON-able)."
    from .. import __version__
    dls, model = learn.dls, learn.model
    if not hasattr(model, 'hparams'):
        raise TypeError("save_pretrained needs a model built by get_relevance_model (it records model.hparams).")
    return {'format_version': MODEL_FORMAT_VERSION, 'relcollab_version': __version__, 'hparams': model.hparams,
            'tokenizer': {'max_tokens': dls.tokenizer.max_tokens},
            'score_range': [dls.score_scaler.lo, dls.score_scaler.hi],
            'columns': {'query': dls.query_col, 'doc': dls.doc_col, 'score': dls.score_col},
            'bs': dls.bs}


def unique_tensors(model) -> dict:
    """The state dict with each tensor once (a tied embedding is shared by two names), contiguous, in order.

    Loading (`safetensors.torch.load_model`) fills the other names; one model always gives the same bytes.
    """
    seen, tensors = set(), {}
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        if tensor.numel() and key in seen: continue
        seen.add(key)
        tensors[name] = tensor.detach().cpu().contiguous()
    return tensors


@patch
def save_pretrained(self: RelevanceLearner, path) -> Path:
    """Writes the model to directory `path` without pickle: weights (safetensors), config.json, vocab.json.

    The directory is replaced as a whole (write under a temporary name, then rename); an existing directory
    that is not a saved model is refused rather than overwritten. Load it with `load_pretrained(path)`.

    >>> learn.save_pretrained('rel_model')  # doctest: +SKIP
    PosixPath('rel_model')
    """
    path = check_save_target(path)
    config = model_config(self)

    def fill(directory: Path):
        save_file(unique_tensors(self.model), str(directory/WEIGHTS_FILE), metadata={'format': 'pt'})
        config['weights_sha256'] = file_sha256(directory/WEIGHTS_FILE)
        (directory/VOCAB_FILE).write_text(json.dumps(list(self.dls.vocab), ensure_ascii=False), encoding='utf-8')
        (directory/CONFIG_FILE).write_text(json.dumps(config, indent=1), encoding='utf-8')
        shutil.copymode(directory/CONFIG_FILE, directory/WEIGHTS_FILE)  # safetensors writes 0600; use the usual mode
    return atomic_directory(path, fill)


def _read_json(path: Path, what: str):
    return read_json(path, PretrainedFormatError,
                     missing=f". Is {path.parent} a directory written by learn.save_pretrained (or `relcollab fit "
                             f"--pretrained`)? It needs {CONFIG_FILE}, {VOCAB_FILE} and {WEIGHTS_FILE}.",
                     corrupt=f": the {what} is truncated or corrupted; copy the directory again or save it again.")


def read_config(path) -> dict:
    "config.json of a pretrained directory, checked: all keys present and a format version this relcollab reads."
    path = Path(path)
    config = _read_json(path/CONFIG_FILE, 'configuration')
    if not isinstance(config, dict) or not set(CONFIG_KEYS) <= set(config):
        missing = sorted(set(CONFIG_KEYS) - set(config)) if isinstance(config, dict) else list(CONFIG_KEYS)
        raise PretrainedFormatError(f"{path/CONFIG_FILE}: not a relcollab model configuration (missing {missing}).")
    version = config['format_version']
    if not isinstance(version, int) or version < 1:
        raise PretrainedFormatError(f"{path/CONFIG_FILE}: format_version must be a positive integer, got {version!r}.")
    if version > MODEL_FORMAT_VERSION:
        raise PretrainedFormatError(
            f"{path}: saved in model format {version} by relcollab {config.get('relcollab_version', '?')}; this "
            f"relcollab reads format {MODEL_FORMAT_VERSION} at most. Upgrade relcollab (pip install -U relcollab).")
    return config


def _read_vocab(path: Path, vocab_sz: int) -> list:
    vocab = _read_json(path/VOCAB_FILE, 'vocabulary')
    if not isinstance(vocab, list) or not all(isinstance(token, str) for token in vocab) or len(vocab) != vocab_sz:
        size = len(vocab) if isinstance(vocab, list) else type(vocab).__name__
        raise PretrainedFormatError(f"{path/VOCAB_FILE}: expected a list of {vocab_sz} tokens (config.json "
                                    f"hparams.vocab_sz), got {size}. The directory is inconsistent: save it again.")
    return vocab


def _build_model(path: Path, hparams: dict):
    try:
        return get_relevance_model(**hparams)
    except (TypeError, KeyError, ValueError) as error:
        raise PretrainedFormatError(f"{path/CONFIG_FILE}: this relcollab cannot build the saved architecture "
                                    f"({type(error).__name__}: {error}). Upgrade relcollab.") from None


def _check_weights(path: Path, model, expected_sha: str):
    "The weights file is the one config.json describes, and every tensor in it fits `model`."
    weights = path/WEIGHTS_FILE
    if not weights.is_file(): raise PretrainedFormatError(f"{weights}: missing; save the model again.")
    if file_sha256(weights) != expected_sha:
        raise PretrainedFormatError(f"{weights}: its sha256 is not the one in {CONFIG_FILE}: the file is truncated "
                                    "or corrupted (or was replaced). Copy the directory again or save it again.")
    own = model.state_dict()
    try:
        with safe_open(str(weights), framework='pt') as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise PretrainedFormatError(f"{weights}: not a readable safetensors file ({error}).") from None
    problems = [f"{key}: file {shape} vs model {tuple(own[key].shape)}"
                for key, shape in shapes.items() if key in own and tuple(own[key].shape) != shape]
    problems += [f"unexpected {key}" for key in shapes if key not in own]
    if problems:
        raise PretrainedFormatError(f"{weights} does not fit the architecture in {CONFIG_FILE}: "
                                    + '; '.join(problems[:6]) + ". The directory is inconsistent: save it again.")


def pretrained_dataloaders(config: dict, vocab: list, path='.') -> RelevanceDataLoaders:
    "Empty `RelevanceDataLoaders` with the saved vocabulary, tokenizer, score range and columns (for `test_dl`)."
    columns = config['columns']
    return RelevanceDataLoaders.for_inference(vocab, config['score_range'], columns['query'], columns['doc'],
                                              columns['score'], max_tokens=config['tokenizer']['max_tokens'],
                                              bs=config.get('bs', 64), path=path)


def load_pretrained(path, cpu=True) -> RelevanceLearner:
    """A `RelevanceLearner` from a directory written by `learn.save_pretrained` (never unpickles).

    Loads on the CPU (`cpu=False`: fastai's default device) and scores exactly as the saved learner did:
    `predict`, `score_pairs`, `encode`, `index`, `search` and `rank` all work. Every problem (a missing or
    corrupted file, a format from a newer relcollab, tensors that do not fit) raises `PretrainedFormatError`.

    >>> learn = load_pretrained('rel_model')  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_dir(): raise PretrainedFormatError(f"{path}: no such model directory (write one with learn.save_pretrained).")
    config = read_config(path)
    hparams = config['hparams']
    vocab = _read_vocab(path, hparams.get('vocab_sz'))
    model = _build_model(path, hparams)
    _check_weights(path, model, config['weights_sha256'])
    try:
        load_safetensors_model(model, str(path/WEIGHTS_FILE), strict=True, device='cpu')
    except (SafetensorError, RuntimeError) as error:
        raise PretrainedFormatError(f"{path/WEIGHTS_FILE}: could not load the weights ({error}).") from None
    dls = pretrained_dataloaders(config, vocab)
    learn = RelevanceLearner(dls, model.eval(), loss_func=MSELossFlat(), metrics=[rmse, SpearmanCorrCoef()],
                             splitter=relevance_split)
    if not cpu:
        device = default_device()
        learn.dls.to(device)
        learn.model.to(device)
    return learn


@patch(cls_method=True)
def from_pretrained(cls: RelevanceLearner, path, cpu=True) -> RelevanceLearner:
    "`RelevanceLearner.from_pretrained(dir)` is `load_pretrained(dir)`."
    return load_pretrained(path, cpu=cpu)


def check_model_file(path: Path):
    "Fails fast, before any other work, when the model file or directory is missing or is a foreign directory."
    if not path.exists(): raise RelevanceDataError(f"{path}: no such model file; train one with `relcollab fit`.")
    if path.is_dir() and not (path/CONFIG_FILE).is_file():
        raise RelevanceDataError(f"{path}: a directory without {CONFIG_FILE}, so not a model saved by "
                                 "`relcollab fit --pretrained` or `learn.save_pretrained`.")


def load_model(path):
    """A pretrained directory with `load_pretrained` (no pickle), else `load_learner(path)`, on the CPU, with an
    error that says what to do when the file is missing or foreign (the command line's way to load a model; `path`:
    a `Path` or a string)."""
    from fastai.learner import load_learner
    from . import index  # noqa: F401  (patches learn.encode, .index, .search and .rank onto the learner)
    path = Path(path)
    check_model_file(path)
    if path.is_dir(): return load_pretrained(path)
    try:
        return load_learner(path, cpu=True)
    except Exception as error:  # a truncated or foreign file fails in many ways inside torch/pickle
        raise RelevanceDataError(f"{path}: could not load a relcollab model ({type(error).__name__}: {error}); "
                                 "pass a file written by `relcollab fit` or `learn.export()`.") from error
