"""Old module paths -> their new homes, so `import relcollab.model`, `from relcollab.recipe import ...` and
pickles (fastai `learn.export` files) that name `relcollab.model.RelevanceModel` keep working.

`relcollab/__init__.py` puts `MovedModuleFinder` first on `sys.meta_path`: importing an old name imports the
new module and registers that same module object under the old name too (`relcollab.model is relcollab.core.model`).
`python -m relcollab.cli` runs `relcollab.app.cli` as `__main__`.
"""
import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    **{f'relcollab.{m}': f'relcollab.core.{m}'
       for m in ('atomic', 'bf16', 'data', 'eval_encoder', 'losses', 'model', 'text', 'validation')},
    'relcollab.configs': 'relcollab.core.model',  # folded: MODEL_SIZES, lm_config, relevance_config
    'relcollab.terms': 'relcollab.core.model',  # folded: term_ids
    'relcollab.scores': 'relcollab.core.data',  # folded: ScaleScore, score_range_of
    **{f'relcollab.{m}': f'relcollab.training.{m}'
       for m in ('checkpoint', 'distill', 'distributed', 'interpret', 'learner', 'lm', 'pseudo', 'recipe',
                 'self_supervised', 'teacher', 'word_vectors')},
    **{f'relcollab.{m}': f'relcollab.retrieval.{m}'
       for m in ('bm25', 'encode', 'evaluate', 'fusion', 'index', 'pretrained', 'trec')},
    'relcollab.fingerprint': 'relcollab.retrieval.index',  # model_fingerprint
    'relcollab.rank': 'relcollab.retrieval.index',  # learn.rank
    **{f'relcollab.{m}': f'relcollab.datasets.{m}' for m in ('collection', 'cranfield', 'docs_only')},
    **{f'relcollab.{m}': f'relcollab.app.{m}' for m in ('benchmark', 'cli', 'cli_options', 'demo', 'retrieval_cli')},
}


class MovedModuleLoader(importlib.abc.Loader):
    "Loads an old name as the module at its new name (imported once, one object under both names)."
    def __init__(self, new: str): self.new = new

    def create_module(self, spec):
        module = importlib.import_module(self.new)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self.own_spec  # the import system set the old name's spec on it: give its own back

    def get_code(self, fullname):
        "For `python -m relcollab.<old>`: run the new module as __main__."
        return compile(f"import runpy; runpy.run_module({self.new!r}, run_name='__main__', alter_sys=True)",
                       f'<{fullname} -> {self.new}>', 'exec')

    def is_package(self, fullname): return False


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    "Finds `MOVED`'s old names (and nothing else)."
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None: return None
        return importlib.util.spec_from_loader(fullname, MovedModuleLoader(new))


def install():
    "Puts one `MovedModuleFinder` first on `sys.meta_path` (once)."
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path): sys.meta_path.insert(0, MovedModuleFinder())
