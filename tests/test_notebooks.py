"""The notebooks in notebooks/ run top to bottom in quick mode (RELCOLLAB_QUICK=1), as CI runs them: a cell that
raises fails the test. Also checks that the committed copies carry their outputs and a `parameters` cell."""
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from test_cranfield import CRANFIELD_DIR

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent/'notebooks'
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob('*.ipynb'))
CELL_TIMEOUT_S = 1200  # per cell; a shared 2-core machine can be several times slower than an idle one


def test_there_are_notebooks():
    assert {'01_quickstart.ipynb', '02_your_own_data.ipynb'} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_parameters_and_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == 'code']
    assert 'parameters' in code[0].metadata.get('tags', []) and 'RELCOLLAB_QUICK' in code[0].source
    assert nb.metadata.kernelspec.name == 'python3'
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "run top to bottom once"
    assert not [o for cell in code for o in cell.outputs if o.output_type == 'error']
    assert any('image/png' in o.get('data', {}) for cell in code for o in cell.outputs), "plots are saved"


def test_the_python3_kernel_is_this_interpreter(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('import sys; print(sys.executable)')])
    NotebookClient(nb, kernel_name='python3', timeout=120, resources={'metadata': {'path': str(tmp_path)}}).execute()
    assert Path(nb.cells[0].outputs[0].text.strip()).resolve() == Path(sys.executable).resolve()


@pytest.mark.slow
@pytest.mark.skipif(not (CRANFIELD_DIR/'cran.all.1400').is_file(),
                    reason=f"Cranfield not found at {CRANFIELD_DIR} (set RELCOLLAB_CRANFIELD)")
@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    "Executes a fresh copy in a temporary directory (the kernel inherits these variables); writes nothing in the repo."
    work, cwd = tmp_path/'work', tmp_path/'cwd'
    cwd.mkdir()
    monkeypatch.setenv('RELCOLLAB_QUICK', '1')
    monkeypatch.setenv('RELCOLLAB_WORK', str(work))
    monkeypatch.setenv('RELCOLLAB_CRANFIELD', str(CRANFIELD_DIR.resolve()))  # the kernel runs in another directory
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    try:
        NotebookClient(nb, kernel_name='python3', timeout=CELL_TIMEOUT_S,
                       resources={'metadata': {'path': str(cwd)}}).execute()
    finally:
        nbformat.write(nb, tmp_path/path.name)  # the executed copy, to look at when a cell failed
    print(f"{path.name}: {time.time() - start:.0f}s in quick mode")
    assert (work/'models'/'lm_enc.pth').is_file()
    assert list(cwd.iterdir()) == []
