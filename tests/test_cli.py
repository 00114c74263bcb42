"""The `relcollab` command line: fit -> score on a tiny triples file, and clear errors before any training."""
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import make_pairs
from relcollab.cli import main


def run_cli(*args, cwd):
    "Runs the installed console script's entry point in a fresh Python, as a user would."
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-m', 'relcollab.cli', *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def fitted(tmp_path_factory):
    "A model trained by `relcollab fit` on a tiny .tsv of triples (small size, 1 LM epoch, 1 epoch)."
    folder = tmp_path_factory.mktemp('cli')
    make_pairs(160, seed=1).rename(columns={'query': 'q', 'doc': 'd'}).to_csv(
        folder/'triples.tsv', sep='\t', index=False)
    result = run_cli('fit', 'triples.tsv', '--out', 'model.pkl', '--query-col', 'q', '--doc-col', 'd',
                     '--score-range', 0, 3, '--lm-epochs', 1, '--epochs', 2, '--bs', 16, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result


def test_fit_trains_from_scratch_loudly_and_exports(fitted):
    folder, result = fitted
    assert 'FROM SCRATCH' in result.stderr
    assert (folder/'model.pkl').stat().st_size > 0
    assert (folder/'models'/'lm_enc.pth').exists()


def test_score_writes_the_input_rows_plus_predictions_in_original_units(fitted):
    folder, _ = fitted
    pairs = pd.DataFrame({'id': ['007', '8', 'x'], 'q': ['wing heat', 'NA', '  '],
                          'd': ['wing heat flow', 'shock wave', 'jet nozzle'], 'note': ['keep', 'me', 'as is']})
    pairs.to_csv(folder/'pairs.csv', index=False)
    result = run_cli('score', 'model.pkl', 'pairs.csv', '--out', 'scores.csv', '--query-col', 'q', '--doc-col', 'd',
                     cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    scored = pd.read_csv(folder/'scores.csv', dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(scored.drop(columns='prediction'), pairs)
    predictions = scored['prediction'].astype(float)
    assert predictions.between(0, 3).all()


def test_fit_with_a_misnamed_column_fails_before_training(tmp_path, capsys):
    make_pairs(20).to_csv(tmp_path/'triples.csv', index=False)
    code = main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl'), '--query-col', 'querry'])
    err = capsys.readouterr().err
    assert code == 2
    assert "querry" in err and "Did you mean 'query'" in err
    assert not (tmp_path/'models').exists()


def test_fit_with_a_bad_score_names_the_row(tmp_path, capsys):
    df = make_pairs(20)
    df['score'] = df['score'].astype(object)
    df.loc[4, 'score'] = 'high'
    df.to_csv(tmp_path/'triples.csv', index=False)
    code = main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl')])
    err = capsys.readouterr().err
    assert code == 2 and 'score' in err and 'high' in err and 'line 6' in err


def test_score_with_a_missing_model_file_says_what_to_do(tmp_path, capsys):
    pd.DataFrame({'query': ['a'], 'doc': ['b']}).to_csv(tmp_path/'pairs.csv', index=False)
    code = main(['score', str(tmp_path/'nope.pkl'), str(tmp_path/'pairs.csv'), '--out', str(tmp_path/'o.csv')])
    assert code == 2 and 'relcollab fit' in capsys.readouterr().err


def test_score_with_a_corrupted_model_file_fails_clearly(tmp_path, capsys):
    (tmp_path/'broken.pkl').write_bytes(b'not a model at all')
    pd.DataFrame({'query': ['a'], 'doc': ['b']}).to_csv(tmp_path/'pairs.csv', index=False)
    code = main(['score', str(tmp_path/'broken.pkl'), str(tmp_path/'pairs.csv'), '--out', str(tmp_path/'o.csv')])
    assert code == 2 and 'could not load a relcollab model' in capsys.readouterr().err


def test_console_script_is_installed():
    result = subprocess.run(['relcollab', '--help'], capture_output=True, text=True)
    assert result.returncode == 0 and 'fit' in result.stdout and 'demo' in result.stdout
