"""One place for paths: the shipped models (with $WORKBENCH_MODELS) and checkpoint resolution."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from workbench import paths
from workbench.session.opening import resolve_checkpoint


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "card.json").write_text(json.dumps({"arch": "small-resnet"}))
    return path


def test_models_dir_order_env_then_checkout_then_package(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    root = paths.source_root()
    assert root is not None and (root / "pyproject.toml").is_file()  # the tests run from a checkout
    assert paths.models_dir() == root / "assets" / "models"
    assert Path(sys.prefix) / paths.INSTALLED_MODELS in paths.model_dirs()  # where `pip install .` puts them
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path))
    assert paths.models_dir() == tmp_path and paths.shipped_model("x") == tmp_path / "x"
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path / "absent"))
    assert paths.models_dir() == root / "assets" / "models"  # a missing override is skipped


def test_resolve_checkpoint_default_fallback_and_relative(tmp_path, monkeypatch):
    models = tmp_path / "assets" / "models"
    base = _model_folder(models / "fashion-baseline")
    monkeypatch.setenv(paths.MODELS_ENV, str(models))
    path, note = resolve_checkpoint(None)
    assert path == base and "fashion-editable" in note and "baseline" in note
    path, note = resolve_checkpoint("../assets/models/fashion-editable")  # as the notebook says it
    assert path == base.resolve() and "missing" in note
    ed = _model_folder(models / "fashion-editable")
    assert resolve_checkpoint(None) == (ed, "")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (tmp_path, elsewhere):  # found through $WORKBENCH_MODELS from any directory
        monkeypatch.chdir(cwd)
        assert resolve_checkpoint("../assets/models/fashion-editable") == (ed.resolve(), "")
        assert resolve_checkpoint("assets/models/fashion-editable") == (ed.resolve(), "")
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_checkpoint("nowhere/model")
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="WORKBENCH_MODELS"):
        resolve_checkpoint(None)


def test_widgets_reexport_the_session_layer_functions():
    pytest.importorskip("ipywidgets")
    from workbench import widgets
    from workbench.session import opening

    assert widgets.resolve_checkpoint is opening.resolve_checkpoint
    assert widgets.open_session is opening.open_session
