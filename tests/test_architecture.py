"""The layers as a user's data walks through them (issue 13): one row from a CSV to a score (`relcollab score`) and
one query from text to a TREC run (`relcollab search`) each cross the package's modules in one direction.

A profiler records every call from one relcollab module into another during the walk. The module graph of those
calls must have no cycle (no module hands work down and gets called back), and every call goes from a layer to
itself or one below it: app -> training / retrieval -> datasets -> core.
"""
import sys
from collections import Counter
from graphlib import CycleError, TopologicalSorter

import pandas as pd
import pytest

from conftest import make_pairs, torch_threads, train_tiny
from relcollab.app.cli import main

LAYERS = {'core': 0, 'datasets': 1, 'training': 2, 'retrieval': 2, 'app': 3}


def layer(module: str) -> int:
    "relcollab.<layer>.<module> -> the layer's rank (the package's own __init__ and aliases sit on top)."
    parts = module.split('.')
    return LAYERS.get(parts[1], 4) if len(parts) > 2 else 4


def module_calls(argv) -> Counter:
    "(caller module, callee module) -> number of calls, for the calls between relcollab modules while `main(argv)` runs."
    edges = Counter()

    def record(frame, event, arg):
        if event != 'call' or frame.f_back is None: return
        callee, caller = frame.f_globals.get('__name__', ''), frame.f_back.f_globals.get('__name__', '')
        if callee != caller and callee.startswith('relcollab.') and caller.startswith('relcollab.'):
            edges[(caller, callee)] += 1
    previous = sys.getprofile()  # e.g. a profiler or coverage tool the user runs pytest under
    sys.setprofile(record)
    try: code = main([str(a) for a in argv])
    finally: sys.setprofile(previous)
    assert code in (0, None)
    return edges


def check_one_way(edges: Counter):
    "Raises AssertionError naming the calls that go back up a layer or close a cycle."
    upward = [f'{a} -> {b}' for a, b in edges if layer(a) < layer(b)]
    assert not upward, f"calls from a lower layer into a higher one: {upward}"
    graph = {}
    for a, b in edges: graph.setdefault(a, set()).add(b)
    try: tuple(TopologicalSorter(graph).static_order())
    except CycleError as error: raise AssertionError(f"modules call each other in a cycle: {error.args[1]}") from None


@pytest.fixture(scope='module')
def walk(tmp_path_factory):
    root = tmp_path_factory.mktemp('walk')
    with torch_threads(1):
        train_tiny(make_pairs(120), root).save_pretrained(root/'model')
        pd.DataFrame({'query': ['wing heat'], 'doc': ['wing heat flow slab']}).to_csv(root/'pairs.csv', index=False)
        docs = pd.DataFrame({'id': ['d1', 'd2', 'd3'], 'text': ['wing heat flow', 'shock wave', 'boundary layer jet']})
        docs.to_csv(root/'docs.csv', index=False)
        pd.DataFrame({'id': ['q1'], 'text': ['heat of the wing']}).to_csv(root/'queries.csv', index=False)
        assert main(['index', str(root/'model'), str(root/'docs.csv'), '--out', str(root/'index')]) == 0
        yield root


def test_a_row_from_a_csv_to_a_score_crosses_the_layers_one_way(walk):
    with torch_threads(1):
        edges = module_calls(['score', walk/'model', walk/'pairs.csv', '--out', walk/'scores.csv'])
    check_one_way(edges)
    assert {'relcollab.app.cli', 'relcollab.core.data', 'relcollab.retrieval.pretrained'} <= {m for e in edges for m in e}
    assert len(pd.read_csv(walk/'scores.csv')) == 1


def test_a_query_from_text_to_a_trec_run_crosses_the_layers_one_way(walk):
    with torch_threads(1):
        edges = module_calls(['search', walk/'model', walk/'queries.csv', '--index', walk/'index', '--k', 3, '--out', walk/'run.trec'])
    check_one_way(edges)
    assert {('relcollab.retrieval.index', 'relcollab.retrieval.encode'), ('relcollab.retrieval.encode', 'relcollab.core.model'),
            ('relcollab.app.retrieval_cli', 'relcollab.retrieval.trec')} <= set(edges)
    assert (walk/'run.trec').read_text().count('\n') == 3


def test_the_check_catches_a_call_back_up_and_a_cycle():
    with pytest.raises(AssertionError, match='lower layer'):
        check_one_way(Counter({('relcollab.core.data', 'relcollab.training.learner'): 1}))
    with pytest.raises(AssertionError, match='cycle'):
        check_one_way(Counter({('relcollab.retrieval.index', 'relcollab.retrieval.encode'): 1,
                               ('relcollab.retrieval.encode', 'relcollab.retrieval.index'): 1}))
