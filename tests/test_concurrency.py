"""One loaded model, 8 threads: predict, score_pairs, encode, search and rank give exactly the serial results.

The AWD-LSTM keeps its hidden state in the module and fastai's `get_preds` keeps its batch on the learner, so
relcollab runs every model call under one lock (`relcollab.training.learner._PREDICT_LOCK`): calls from many threads
are safe and give the serial results, one model call at a time.
"""
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import torch_threads
from relcollab.retrieval.pretrained import load_pretrained

N_THREADS, ROUNDS = 8, 2


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


@pytest.fixture(scope='module')
def loaded(trained, tmp_path_factory):
    return load_pretrained(trained.save_pretrained(tmp_path_factory.mktemp('threads')/'model'))


def tasks(learn, pairs_df):
    "Named calls covering every inference path, each returning something comparable exactly."
    pairs = pairs_df[['query', 'doc']].iloc[:48].reset_index(drop=True)
    docs = pairs_df['doc'].iloc[100:160].tolist()
    index = learn.index(docs)
    calls = {f'predict {i}': (lambda i=i: learn.predict(pairs['query'][i], pairs['doc'][i])[0]) for i in range(0, 48, 12)}
    calls.update({f'score_pairs {i}': (lambda i=i: learn.score_pairs(pairs.iloc[i:i + 16], bs=5)) for i in (0, 16, 32)})
    calls.update({f'encode {side}': (lambda side=side: learn.encode(docs, side=side, bs=7)) for side in ('query', 'doc')})
    calls['encode one'] = lambda: learn.encode('wing heat flow', side='query')
    calls['search'] = lambda: tuple(learn.search(pairs['query'].tolist()[:10], index, k=5))
    calls['rank'] = lambda: learn.rank('shock wave', docs, k=4)[['id', 'score']].to_numpy()
    return calls


def same(first, second) -> bool:
    if isinstance(first, tuple): return all(same(a, b) for a, b in zip(first, second))
    return np.array_equal(np.asarray(first), np.asarray(second))


def test_eight_threads_on_one_model_give_exactly_the_serial_results(loaded, pairs_df):
    with loaded.no_bar():
        calls = tasks(loaded, pairs_df)
        serial = {name: call() for name, call in calls.items()}
        start = threading.Barrier(N_THREADS)

        def worker(seed):
            order = list(calls) * ROUNDS
            random.Random(seed).shuffle(order)  # every thread interleaves the calls differently
            start.wait()
            return [(name, calls[name]()) for name in order]

        with ThreadPoolExecutor(N_THREADS) as pool:
            results = [result for done in pool.map(worker, range(N_THREADS)) for result in done]
    assert len(results) == N_THREADS * ROUNDS * len(calls)
    wrong = sorted({name for name, value in results if not same(value, serial[name])})
    assert not wrong, f"differ from the serial results: {wrong}"
