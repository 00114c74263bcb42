"""The word pool's training choices on Cranfield: the dense part and the full model, validation and test nDCG@10,
before and after relevance training, for recipe options given as JSON (a list of `train_relcollab` keyword dicts,
`variant` naming a bench/cranfield.py variant):

    python bench/word_pool_training.py FOLD '[{"word_pool": "corpus", "proj_sz": 400, "pool_skip": true, "lr": 0.001}]' [EPOCHS]

The README's learning-rate and skip figures for the word pool come from runs like
`python bench/word_pool_training.py 0 '[{"word_pool": "corpus", "proj_sz": 400, "pool_skip": true, "lr": 0.01}, {"word_pool": "corpus", "proj_sz": 400, "pool_skip": true, "lr": 0.001}]'`
(and fold 1; without "lr" the bench picks the recipe's: 1e-2, or 1e-3 with a teacher and a word pool; a word pool
gets the recipe's skip connection unless "pool_skip": false). The language model (2 epochs, corpus word vectors) is trained once per fold and kept in
$TMPDIR/relcollab_word_pool/work{FOLD}. About 7 minutes per option on 2 cores.
"""
import sys, json, tempfile, time, types, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.simplefilter('ignore')
import cranfield as C
from relcollab.training.recipe import _sources
from relcollab.training.lm import language_model_stage

fold = int(sys.argv[1]); configs = json.loads(sys.argv[2]); epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
work = Path(tempfile.gettempdir())/'relcollab_word_pool'/f'work{fold}'; work.mkdir(exist_ok=True, parents=True)
data, (fit_ids, valid_ids, test_ids), qrels = C.load_fold(fold)
docs, doc_ids = data.docs['text'].tolist(), data.docs['doc_id'].tolist()
text_of = data.queries.set_index('query_id')['text']
vq, tq = [text_of[q] for q in valid_ids], [text_of[q] for q in test_ids]
vocab_file = work/'models'/'lm_wv.vocab.json'
if not vocab_file.exists():
    language_model_stage(docs + [text_of[q] for q in fit_ids + valid_ids], size='small', epochs=2, path=work,
                         word_vectors='corpus', encoder_name='lm_wv')
lm = types.SimpleNamespace(vocab=json.loads(vocab_file.read_text()), encoder_name='lm_wv')

def report(learn, tag):
    size = C.dense_size(learn)
    out = {}
    for name, part in (('dense', size), ('full', None)):
        for split, q, ids in (('valid', vq, valid_ids), ('test', tq, test_ids)):
            sc = C.relcollab_scores(learn, docs, q) if part is None else C.scores_of_part(learn, docs, q, part)
            out[f'{name} {split}'] = C.evaluate(C.results_from_scores(sc, doc_ids), ids, qrels)[0]['ndcg@10']
        if not learn.model.head.n_lexical: break
    print(tag, ' '.join(f'{k} {v:.3f}' for k, v in out.items()), flush=True)

orig_fine_tune = C.fine_tune_relevance
def fine_tune(learn, epochs, lr):
    report(learn, '  untrained:')
    return orig_fine_tune(learn, epochs=epochs, lr=lr)
C.fine_tune_relevance = fine_tune
for cfg in configs:
    start = time.time()
    variant = cfg.pop('variant', 'default')
    shown = {k: v for k, v in cfg.items() if k != 'teacher'}
    if 'teacher' in cfg:
        from relcollab.training.teacher import load_teacher
        named, cfg['teacher'] = cfg['teacher'], load_teacher(cfg['teacher'])
        if named in _sources(cfg.get('word_pool')):  # its name in the pool: the teacher loaded once, as the recipe does
            cfg['word_pool'] = [cfg['teacher'] if source == named else source for source in _sources(cfg['word_pool'])]
    if 'word_pool' in cfg: cfg['cache_dir'] = C.TEACHER_CACHE
    learn = C.train_relcollab(data, fit_ids, valid_ids, lm, work, epochs=epochs, **{**C.VARIANTS[variant], 'pool_embeddings': 'idf', **cfg})
    report(learn, f'{variant} {(shown, "teacher" in cfg)} ({time.time() - start:.0f} s):')
