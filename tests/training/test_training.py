"""Training loop: recipes, validation, resume, fine-tuning, checkpoints and cards."""
from __future__ import annotations

import json

import pytest
import torch

from tests.support.settings import TINY
from workbench.cli import main
from workbench.training import RECIPES, Recipe, get_recipe, load_model, train
from workbench.training.loop import STATE_FILE
from workbench.training.run import make_objective


def tiny_recipe(**kw) -> Recipe:
    base = dict(name="tiny", epochs=1, batch_size=32, lr=3e-3, warmup_epochs=0.0, train_subset=128,
                eval_subset=100, arch_kwargs=dict(TINY))
    base.update(kw)
    return Recipe(**base)


def editable(**kw) -> Recipe:
    return tiny_recipe(editable=True, editor_lr=1e-3, edit_steps=3, c_edit=0.1, c_loc=0.1, **kw)


def test_recipes_exist_and_validate():
    assert {"fashion-baseline", "fashion-editable", "cifar10-baseline", "cifar10-editable"} <= set(RECIPES)
    for name in RECIPES:
        get_recipe(name).override(init_from=None).validate()
    c = get_recipe("cifar10-editable")  # the paper's setting
    assert (c.arch, c.editor, c.editor_lr, c.edit_steps, c.c_edit, c.c_loc, c.edit_layers, c.augment) == \
        ("resnet18", "rmsprop", 1e-3, 10, 0.01, 0.01, "chain3", True)
    assert c.crop_pad == 4 and c.weight_decay == 0.0  # Adam (AdamW without decay), crop + flip
    f = get_recipe("fashion-editable")
    assert f.editable and f.init_from == "assets/models/fashion-baseline" and f.grad_clip


@pytest.mark.parametrize("args, words", [
    (["--recipe", "no-such-recipe"], ["unknown recipe", "no-such-recipe", "fashion-baseline"]),
    (["--recipe", "fashion-editable", "--init-from", "none", "--edit-layers", "chain9"],
     ["edit_layers", "chain9", "chain3"]),
    (["--recipe", "fashion-editable", "--init-from", "none", "--c-edit", "-0.1"], ["c_edit", "--c-edit", ">= 0"]),
    (["--recipe", "fashion-editable", "--init-from", "none", "--c-loc", "-1"], ["c_loc", "--c-loc"]),
    (["--recipe", "fashion-editable", "--init-from", "none", "--batch-size", "16", "--edits-per-batch", "17"],
     ["edits_per_batch", "larger than the batch", "16"]),
    (["--recipe", "fashion-editable", "--init-from", "/nonexistent/model"], ["init_from", "card.json"]),
    (["--recipe", "fashion-editable", "--init-from", "none", "--editor", "lbfgs"], ["unknown editor", "lbfgs"]),
])
def test_bad_input_is_refused_by_the_cli_before_any_work(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    code = main(["train", *args, "--out", str(out), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists()  # nothing was started


def test_cli_none_overrides_an_optional_field():
    from workbench.cli._common import recipe_from_args
    from workbench.cli.train import add_arguments as _train_args
    import argparse

    p = argparse.ArgumentParser()
    _train_args(p)
    r = recipe_from_args(p.parse_args(["--recipe", "fashion-editable", "--init-from", "none", "--lr", "1e-4"]))
    assert r.init_from is None and r.lr == 1e-4 and r.editor_lr == RECIPES["fashion-editable"].editor_lr


def test_resume_from_another_architecture_is_refused(tmp_path, fashion_small):
    """A train state whose architecture is not the recipe's (its card says otherwise) is not loaded."""
    recipe = tiny_recipe(epochs=2)
    train(recipe.override(epochs=1), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    card = json.loads((tmp_path / "card.json").read_text())
    card["recipe"] = json.loads(json.dumps(recipe.override(arch_kwargs={"widths": [8, 8, 16, 32],
                                                                         "blocks": [1, 1, 1, 1]}).to_dict()))
    (tmp_path / "card.json").write_text(json.dumps(card))  # an unfinished run of a wider model, as far as the card says
    before = (tmp_path / STATE_FILE).read_bytes()
    with pytest.raises(ValueError, match="cannot resume .* architecture"):
        train(recipe.override(arch_kwargs=card["recipe"]["arch_kwargs"]), tmp_path, bundle=fashion_small,
              device="cpu", progress=False)
    assert (tmp_path / STATE_FILE).read_bytes() == before


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_replays_the_uninterrupted_run(tmp_path, fashion_small):
    """Editable run killed during epoch 2, resumed: same weights, editor and log as one run."""
    recipe = editable(epochs=2)
    full = train(recipe, tmp_path / "full", objective=make_objective(recipe), bundle=fashion_small, device="cpu",
                 progress=False)
    obj = make_objective(recipe)
    steps_per_epoch = recipe.train_subset // recipe.batch_size

    def dying(model, x, y, step):
        if step == steps_per_epoch + 1:
            raise _Interrupt
        return obj(model, x, y, step)
    dying.extra_parameters = obj.extra_parameters  # type: ignore[attr-defined]
    with pytest.raises(_Interrupt):
        train(recipe, tmp_path / "cut", objective=dying, bundle=fashion_small, device="cpu", progress=False)
    state = torch.load(tmp_path / "cut" / STATE_FILE, weights_only=True)
    assert state["epoch"] == 1 and state["step"] == steps_per_epoch
    assert set(state) >= {"model", "optimizer", "epoch", "step", "wall_time_s", "arch", "model_config", "extra"}
    resumed_obj = make_objective(recipe)
    resumed = train(recipe, tmp_path / "cut", objective=resumed_obj, bundle=fashion_small, device="cpu",
                    progress=False)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0)
    assert resumed.card["editor"]["lr"] == full.card["editor"]["lr"]
    rows = [json.loads(l) for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [r["step"] for r in ref]
    assert rows[1]["loss"] == pytest.approx(ref[1]["loss"], rel=1e-6)


def test_fine_tune_starts_from_init_from(tmp_path, tiny_model_dir, fashion_small):
    init, init_card = load_model(tiny_model_dir)
    recipe = editable(init_from=str(tiny_model_dir), lr=1e-4)
    obj = make_objective(recipe)
    seen = {}

    def spy(model, x, y, step):
        if step == 0:
            seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return obj(model, x, y, step)
    spy.extra_parameters = obj.extra_parameters  # type: ignore[attr-defined]
    res = train(recipe, tmp_path, objective=spy, bundle=fashion_small, device="cpu", progress=False)
    for k, v in init.state_dict().items():
        assert torch.equal(seen[k], v), k
    assert res.card["recipe"]["init_from"] == str(tiny_model_dir)
    # a short, small-lr fine-tune keeps what the model learned (chance would be 0.9)
    assert res.card["val_error"] <= init_card["val_error"] + 0.05
    with pytest.raises(ValueError, match="init_from .* architecture"):
        train(editable(init_from=str(tiny_model_dir), arch_kwargs={"widths": [8, 8, 16, 32]}), tmp_path / "x",
              bundle=fashion_small, device="cpu", progress=False)


def test_card_and_metrics_record_the_editable_run(tmp_path, fashion_small):
    recipe = editable(epochs=1)
    res = train(recipe, tmp_path, objective=make_objective(recipe), bundle=fashion_small, device="cpu",
                progress=False, command="pytest")
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["recipe"] == recipe.to_dict()  # every hyperparameter
    ed = card["editor"]
    assert ed["method"] == "rmsprop" and ed["layers"] == "chain3" and ed["max_steps"] == 3 and ed["learned"]
    assert ed["lr"] > 0 and 0 < ed["beta"] < 1 and ed["lr"] != pytest.approx(recipe.editor_lr, rel=1e-4)  # learned: moved beyond round-off
    assert card["amp"] is False and card["channels_last"] is False  # CPU: off
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("loss", "L_base", "L_edit", "L_loc", "edit_success", "edit_steps", "editor_lr", "editor_beta",
                "val_error", "test_error"):
        assert key in row, key
    assert 0 <= row["edit_success"] <= 1 and row["editor_lr"] == pytest.approx(ed["lr"])
    model, _ = load_model(tmp_path)
    for k, v in res.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


def test_a_finished_model_is_reused_by_its_recipe_and_refused_to_another(tmp_path, fashion_small):
    first = train(tiny_recipe(), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    again = train(tiny_recipe(), tmp_path, bundle=fashion_small, device="cpu", progress=False)  # nothing left to do
    assert again.card == json.loads(files["card.json"]) and again.card["test_error"] == first.card["test_error"]
    assert all(torch.equal(v, first.model.state_dict()[k]) for k, v in again.model.state_dict().items())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == files
    with pytest.raises(ValueError, match=r"holds a finished model \(recipe 'tiny', 1 epochs.*--overwrite"):
        train(tiny_recipe(epochs=2, lr=1e-3), tmp_path, bundle=fashion_small, device="cpu", progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == files
    res = train(tiny_recipe(epochs=2, lr=1e-3), tmp_path, bundle=fashion_small, device="cpu", progress=False,
                overwrite=True)
    assert res.card["epochs"] == 2 and res.card["recipe"]["lr"] == 1e-3
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # the old run's log went with it
