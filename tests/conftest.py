"""Shared fixtures: small real data subsets, a tiny, quickly trained model, an EditSession and an
open workbench on it.

Everything is offline and deterministic. The tiny model is trained once per test session
(about 2 s on 2 cores) so the editor, evaluator and widgets are exercised on a real,
non-random network. Shared values live in ``tests/support/settings.py``, shared helpers in
``tests/support/``. A test module changes the ``session`` or ``wb`` fixture's keyword arguments
by overriding ``session_options`` or ``wb_options`` (a fixture returning a dict).
"""
from __future__ import annotations

import os

import pytest
import torch

from tests.support.settings import CFG, LIMIT, LR, TINY

os.environ.setdefault("MPLBACKEND", "Agg")
# Sessions keep no base scores on disk in tests (no file in a model folder or ~/.cache); the
# tests of the score cache set $WORKBENCH_SCORE_CACHE to a folder of their own.
os.environ.setdefault("WORKBENCH_SCORE_CACHE", "off")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _spill_folders_on_disk(monkeypatch) -> None:
    """The spill folders of the tests lie under the temporary folder or $HOME, either of which may be
    a RAM disk (tmpfs) on some machine; the tests check where the evaluator puts a cache, so every
    folder counts as a disk here. The RAM-disk rule has its own tests
    (tests/evaluation/test_ram_disk.py), which turn it back on. Tests that run the product in a
    subprocess (notebooks, the browser) keep the real rule: it changes where a cache is kept, not
    any result."""
    from workbench.evaluation import budget

    monkeypatch.setattr(budget, "RAM_FILESYSTEMS", frozenset())


@pytest.fixture(scope="session")
def fashion():
    """The full Fashion-MNIST bundle (from Debian's dataset-fashion-mnist)."""
    from workbench.data import load_fashion_mnist

    return load_fashion_mnist()


@pytest.fixture(scope="session")
def fashion_small(fashion):
    """2000 train / 500 val / 1000 test images."""
    return fashion.subset(train=2000, val=500, test=1000)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, fashion_small):
    """A model folder (model.safetensors + card.json) of a tiny ResNet trained for 2 epochs."""
    from workbench.training import Recipe, train

    out = tmp_path_factory.mktemp("tiny_model")
    recipe = Recipe(name="tiny", epochs=2, batch_size=64, lr=3e-3, warmup_epochs=0.0,
                    arch_kwargs=dict(TINY))
    train(recipe, out, bundle=fashion_small, device="cpu", progress=False, command="pytest fixture")
    return out


@pytest.fixture()
def tiny_model(tiny_model_dir):
    """A fresh copy (eval mode, CPU) of the tiny trained model for each test."""
    from workbench.training import load_model

    model, _ = load_model(tiny_model_dir)
    return model


@pytest.fixture()
def session_options() -> dict:
    """Keyword arguments that a module's ``session`` adds or replaces (override this fixture)."""
    return {}


@pytest.fixture()
def session(tiny_model, tiny_model_dir, fashion_small, session_options):
    """An EditSession on a fresh tiny model with its card: 200 test images, the CFG editor."""
    from workbench.session import EditSession
    from workbench.training import read_card

    kw = {"card": read_card(tiny_model_dir), "checkpoint": tiny_model_dir, "config": CFG, "limit": 200,
          **session_options}
    return EditSession(tiny_model, fashion_small, **kw)


@pytest.fixture()
def wb_options() -> dict:
    """Keyword arguments that a module's ``wb`` adds or replaces (override this fixture);
    ``lr`` is the editor panel's step (None keeps the panel's default)."""
    return {}


@pytest.fixture()
def wb(tiny_model_dir, fashion_small, tmp_path, wb_options):
    """The workbench (``show``) on the tiny model: LIMIT test images, no probe views, output
    under tmp_path/out, the editor panel's step set to LR."""
    pytest.importorskip("ipywidgets")
    pytest.importorskip("plotly")
    from workbench.widgets import show

    kw = {"limit": LIMIT, "device": "cpu", "probe_views": 0, "output_dir": tmp_path / "out", "lr": LR, **wb_options}
    lr = kw.pop("lr")
    w = show(tiny_model_dir, bundle=fashion_small, **kw)
    if lr is not None:
        w.panel.lr.value = lr
    return w


@pytest.fixture
def edit_calls(monkeypatch):
    """Counts the evaluator's edits; ``calls.crash_after = n`` raises KeyboardInterrupt (Ctrl-C) at edit n + 1,
    as a run stopped mid-way would (used by the CLI resume and bad-input tests)."""
    import workbench.evaluation.edit_runs as edit_runs_module

    real_edit = edit_runs_module.edit

    class Calls(list):
        crash_after: int | None = None

    calls = Calls()

    def counting_edit(*args, **kwargs):
        calls.append(1)
        if calls.crash_after is not None and len(calls) > calls.crash_after:
            raise KeyboardInterrupt
        return real_edit(*args, **kwargs)

    monkeypatch.setattr(edit_runs_module, "edit", counting_edit)
    return calls
