"""The `relcollab` command line: fit -> score on a tiny triples file, and clear errors before any training."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_pairs
from relcollab.app.cli import main


def run_cli(*args, cwd):
    "Runs the installed console script's entry point in a fresh Python, as a user would."
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-m', 'relcollab.cli', *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def run_fit_tiny(*args, cwd):
    "`relcollab fit` with the tests' tiny model size registered (`--size tiny`), through tests/fit_driver.py."
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, str(Path(__file__).parent/'fit_driver.py'), os.devnull, '0', 'fit',
                           *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def fitted(tmp_path_factory):
    "A model trained by `relcollab fit` on a tiny .tsv of triples (tiny size, no pseudo-queries, 1 LM epoch, 2 epochs)."
    folder = tmp_path_factory.mktemp('cli')
    make_pairs(160, seed=1).rename(columns={'query': 'q', 'doc': 'd'}).to_csv(
        folder/'triples.tsv', sep='\t', index=False)
    result = run_fit_tiny('triples.tsv', '--out', 'model.pkl', '--pretrained', 'model', '--query-col', 'q',
                          '--doc-col', 'd', '--score-range', 0, 3, '--size', 'tiny', '--pseudo-per-doc', 0,
                          '--lm-epochs', 1, '--epochs', 2, '--bs', 16, '--lr', 3e-3, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result


def test_fit_trains_from_scratch_loudly_and_exports(fitted):
    folder, result = fitted
    assert 'FROM SCRATCH' in result.stderr
    assert 'starts from word vectors' in result.stdout  # the default: word vectors of the corpus itself
    assert 'epochs, lr 0.003)' in result.stdout  # --lr reaches the relevance stage
    assert (folder/'model.pkl').stat().st_size > 0
    assert (folder/'models'/'lm_enc.pth').exists()
    assert sorted(p.name for p in (folder/'model').iterdir()) == ['config.json', 'model.safetensors', 'vocab.json']


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


ODD_PAIRS = pd.DataFrame({'q': ['🚀 wing 🇫🇷', 'مرحبا wing', 'wing\x1b[31m\x00', '\u202eheat\u200b', 'xxpad xxbos', 'wing'],
                          'd': ['heat ' * 3000, 'שלום flow', '\ufeffslab', 'e\u0301 shock', ' \t', '\u3000 '], 'id': range(6)})


def test_score_reads_a_pretrained_directory_like_the_pickle(fitted):
    folder, _ = fitted
    ODD_PAIRS.to_csv(folder/'odd.csv', index=False)
    for model in ('model.pkl', 'model'):
        result = run_cli('score', model, 'odd.csv', '--out', f'scores-{model}.csv', '--query-col', 'q', '--doc-col', 'd',
                         cwd=folder)
        assert result.returncode == 0, result.stderr[-3000:]
    from_pickle = pd.read_csv(folder/'scores-model.pkl.csv', keep_default_na=False)
    from_directory = pd.read_csv(folder/'scores-model.csv', keep_default_na=False)
    pd.testing.assert_frame_equal(from_directory, from_pickle)
    assert from_directory['prediction'].between(0, 3).all()
    pd.testing.assert_frame_equal(from_directory.drop(columns='prediction'), ODD_PAIRS, check_dtype=False)


def test_index_and_search_read_a_pretrained_directory(fitted, tmp_path):
    folder, _ = fitted
    pd.DataFrame({'id': ['a', 'b', 'c'], 'text': ['wing heat', 'shock wave', 'jet nozzle']}).to_csv(tmp_path/'docs.csv', index=False)
    pd.DataFrame({'id': ['1'], 'text': ['wing']}).to_csv(tmp_path/'queries.csv', index=False)
    assert main(['index', str(folder/'model'), str(tmp_path/'docs.csv'), '--out', str(tmp_path/'index')]) == 0
    for model in ('model', 'model.pkl'):  # an index built from the directory is the pickle's model too
        assert main(['search', str(folder/model), str(tmp_path/'queries.csv'), '--index', str(tmp_path/'index'),
                     '--k', '2', '--out', str(tmp_path/f'{model}.trec')]) == 0
    assert (tmp_path/'model.trec').read_text() == (tmp_path/'model.pkl.trec').read_text()


def test_damaged_models_exit_2_with_a_message(fitted, tmp_path, capsys):
    folder, _ = fitted
    pd.DataFrame({'query': ['a'], 'doc': ['b']}).to_csv(tmp_path/'pairs.csv', index=False)
    (tmp_path/'truncated.pkl').write_bytes((folder/'model.pkl').read_bytes()[:20000])
    (tmp_path/'model').mkdir()
    for file in (folder/'model').iterdir(): (tmp_path/'model'/file.name).write_bytes(file.read_bytes())
    weights = tmp_path/'model'/'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:-100])
    (tmp_path/'empty').mkdir()
    expected = {'truncated.pkl': 'could not load a relcollab model', 'model': 'truncated or corrupted',
                'empty': 'a directory without config.json'}
    for model, message in expected.items():
        code = main(['score', str(tmp_path/model), str(tmp_path/'pairs.csv'), '--out', str(tmp_path/'o.csv')])
        assert code == 2 and message in capsys.readouterr().err, model


@pytest.mark.parametrize('args, message', [
    ([], 'fit needs --out MODEL.pkl, --pretrained DIR or both'),
    (['--out', 'm.pkl', '--resume'], '--resume needs --checkpoint-dir DIR'),
    (['--pretrained', 'notes'], 'notes exists and is not a model written by save_pretrained'),
    (['--out', 'm.pkl', '--teacher-epochs', '4'], '--teacher-epochs needs --teacher'),
    (['--out', 'm.pkl', '--teacher', 'T', '--teacher-epochs', '-1'], '--teacher-epochs -1: give 0 or more'),
], ids=['nowhere-to-save', 'resume-without-checkpoint-dir', 'pretrained-over-another-directory',
        'teacher-epochs-without-teacher', 'negative-teacher-epochs'])
def test_fit_options_are_checked_before_training(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    make_pairs(20).to_csv('triples.csv', index=False)
    (tmp_path/'notes').mkdir()
    (tmp_path/'notes'/'todo.txt').write_text('keep me')
    assert main(['fit', 'triples.csv', *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path/'models').exists() and (tmp_path/'notes'/'todo.txt').read_text() == 'keep me'


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


@pytest.mark.parametrize('lr', ['0', '-0.001', 'fast', 'inf'])
def test_fit_with_a_bad_learning_rate_exits_2_before_reading_anything(tmp_path, capsys, lr):
    with pytest.raises(SystemExit) as exit_info:
        main(['fit', str(tmp_path/'missing.csv'), '--lr', lr])
    assert exit_info.value.code == 2 and f'learning rate above 0 such as 1e-2, got {lr!r}' in capsys.readouterr().err


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


def test_fit_word_vectors_option_default_and_none():
    "--word-vectors: unset means the recipe's default ('auto': the corpus's own); 'none' turns them off."
    from relcollab.app.cli import _one_or_list, build_parser
    parse = lambda *extra: build_parser().parse_args(['fit', 'triples.csv', '--out', 'm.pkl', *extra]).word_vectors
    assert _one_or_list(parse()) == 'auto'
    assert _one_or_list(parse('--word-vectors', 'none')) is None
    assert _one_or_list(parse('--word-vectors', 'corpus', 'vectors.txt')) == ['corpus', 'vectors.txt']
    args = build_parser().parse_args(['fit', 't.csv', '--out', 'm.pkl', '--teacher', 'T', '--teacher-epochs', '4'])
    assert args.teacher_epochs == 4 and build_parser().parse_args(['fit', 't.csv', '--out', 'm.pkl']).teacher_epochs == 0
