"""The layered packages (relcollab.core / training / retrieval / datasets / app) keep every old flat path: the old
names import as the same modules, and pickles written before the move (fastai `learn.export` files naming
`relcollab.model.RelevanceModel`, `relcollab.scores.ScaleScore`, ...) still load."""
import importlib
import inspect
import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import relcollab
from relcollab._moved import MOVED
from relcollab.core.data import ScaleScore
from relcollab.core.model import TermWeights

FIXED_PAIRS = [('wing heat', 'heat flow over a wing'), ('mach', 'shock wave drag plate')]


@pytest.mark.parametrize('old', sorted(MOVED))
def test_an_old_path_imports_as_the_same_module(old):
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])
    assert importlib.import_module(old).__spec__.name == MOVED[old]  # the module keeps its own spec
    assert getattr(relcollab, old.rsplit('.', 1)[1]) is importlib.import_module(MOVED[old])


def test_old_paths_give_the_same_classes_and_functions():
    import relcollab.model, relcollab.core.model  # noqa: E401
    from relcollab.recipe import train_relevance_model
    from relcollab.training.recipe import train_relevance_model as new
    from relcollab.scores import ScaleScore as old_scale
    from relcollab.configs import relevance_config
    from relcollab.terms import term_ids
    assert relcollab.model.RelevanceModel is relcollab.core.model.RelevanceModel
    assert train_relevance_model is new and old_scale is ScaleScore
    assert relevance_config is relcollab.core.model.relevance_config and term_ids is relcollab.core.model.term_ids


def _old_path_pickle(obj, old_module: str) -> bytes:
    "A protocol-2 pickle of `obj` whose class is named by `old_module` (as a pickle written before the move)."
    new_module = type(obj).__module__
    data = pickle.dumps(obj, protocol=2)
    head = f'{new_module}\n{type(obj).__qualname__}\n'.encode()
    assert head in data
    return data.replace(head, f'{old_module}\n{type(obj).__qualname__}\n'.encode())


LOAD_OLD_PICKLES = """
import pickle, sys
scale, terms = (pickle.loads(bytes.fromhex(h)) for h in sys.argv[1:3])
import relcollab.core.data, relcollab.core.model
assert type(scale) is relcollab.core.data.ScaleScore and type(terms) is relcollab.core.model.TermWeights
print(scale.decode(scale(3.0)), scale.hi, int(terms.word_bias.shape[0]))
"""


def test_objects_pickled_under_old_module_paths_load_in_a_fresh_python():
    scale = _old_path_pickle(ScaleScore(0, 4), 'relcollab.scores')
    terms = _old_path_pickle(TermWeights(7, 5, saturate=True), 'relcollab.model')
    assert b'relcollab.scores\nScaleScore\n' in scale and b'relcollab.core' not in scale
    assert b'relcollab.model\nTermWeights\n' in terms and b'relcollab.core' not in terms
    assert type(pickle.loads(scale)) is ScaleScore and type(pickle.loads(terms)) is TermWeights
    done = subprocess.run([sys.executable, '-c', LOAD_OLD_PICKLES, scale.hex(), terms.hex()],
                          capture_output=True, text=True, timeout=120)  # nothing imports relcollab first
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ['3.0', '4.0', '7']


OLD_NAME_OF = {'ScaleScore': 'relcollab.scores', 'score_range_of': 'relcollab.scores', 'term_ids': 'relcollab.terms',
               'lm_config': 'relcollab.configs', 'relevance_config': 'relcollab.configs', '_sized': 'relcollab.configs'}


def _named_as_before_the_move():
    "Points every moved class and function's `__module__` at its old flat path; returns how to undo it."
    undo = []
    for old, new in MOVED.items():
        if old.rsplit('.', 1)[1] != new.rsplit('.', 1)[1] or new.startswith('relcollab.retrieval.') and old != 'relcollab.pretrained':
            continue  # folded modules are named per object below; retrieval's modules had these paths already
        for name, obj in vars(importlib.import_module(new)).items():
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, '__module__', None) == new:
                undo.append((obj, new))
                obj.__module__ = OLD_NAME_OF.get(name, old)
    return undo


SCORE_EXPORTED = """
import json, sys, torch
torch.set_num_threads(1)
from fastai.learner import load_learner
learn = load_learner(sys.argv[1], cpu=True)
assert type(learn).__module__ == 'relcollab.training.learner', type(learn).__module__
print(json.dumps(learn.score_pairs(json.loads(sys.argv[2])).tolist()))
"""


def test_a_learner_exported_before_the_move_loads_with_load_learner(trained, tmp_path):
    expected = trained.score_pairs(FIXED_PAIRS)
    undo = _named_as_before_the_move()
    try: trained.export(tmp_path/'old.pkl')
    finally:
        for obj, module in undo: obj.__module__ = module
    with zipfile.ZipFile(tmp_path/'old.pkl') as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith('data.pkl')))
    for old in ('relcollab.learner\nRelevanceLearner', 'relcollab.model\nRelevanceModel', 'relcollab.data\n',
                'relcollab.scores\nScaleScore', 'relcollab.losses\nInBatchLoss', 'relcollab.text\nTextTokenizer'):
        assert old.encode() in data, old
    assert b'relcollab.core' not in data and b'relcollab.training' not in data
    done = subprocess.run([sys.executable, '-c', SCORE_EXPORTED, str(tmp_path/'old.pkl'),
                           json.dumps([list(p) for p in FIXED_PAIRS])],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(json.loads(done.stdout.strip().splitlines()[-1]), expected, atol=1e-6, rtol=0)


def test_python_dash_m_runs_the_old_cli_path():
    done = subprocess.run([sys.executable, '-m', 'relcollab.cli', '--help'], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'usage: relcollab' in done.stdout and 'Warning' not in done.stderr
