"""EditSession.localize, label quality and the ``localize`` CLI on the tiny model."""
from __future__ import annotations

import json

import pytest
import torch



def test_localize_searches_the_current_prediction_and_caches(session):
    with torch.no_grad():
        pred = int(session.model(session.image(3).unsqueeze(0)).argmax())
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    r = session.localize(3)
    assert r.label == pred == r.initial_prediction and r.flip_rate > 0 and r.flipped_to != pred
    assert r.settings.repeats == 2 and r.accuracy_before is not None  # the quick setting, cost on other images
    assert session.localize(3) is r and session.localized_counts() == {3: r.count}
    t = session.localize(3, label="true")
    assert t.label == int(session.evaluator.labels[3])
    assert all(torch.equal(v, before[k]) for k, v in session.model.state_dict().items())
    with pytest.raises(ValueError, match="out of range"):
        session.localize(200)
    with pytest.raises(ValueError, match="out of range"):
        session.localize(-1)
    assert all(torch.equal(v, before[k]) for k, v in session.model.state_dict().items())


def test_cache_follows_the_weights(session):
    r = session.localize(0)
    second = int(session.probabilities(0).argsort(descending=True)[1])
    res = session.edit_index(0, second, max_steps=100)
    assert res.success, res.message
    assert session.localized_counts() == {}  # computed on other weights
    r2 = session.localize(0)
    assert r2 is not r
    session.undo()
    assert session.localize(0) is r


def test_label_quality_is_cleanlabs_self_confidence(session):
    cleanlab_rank = pytest.importorskip("cleanlab.rank")
    q = session.label_quality()
    ev = session.evaluator
    probs = torch.softmax(ev.base_logits.float(), 1).numpy()
    ref = cleanlab_rank.get_label_quality_scores(ev.labels.numpy(), probs, method="self_confidence")
    assert q.shape == (200,) and torch.allclose(q, torch.as_tensor(ref, dtype=q.dtype), atol=1e-6)


def test_cli_localize(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from workbench.cli import main

    out = tmp_path / "loc.json"
    rc = main(["localize", "--checkpoint", str(tiny_model_dir), "--indices", "0,2", "--quick", "--repeats", "1",
               "--json", str(out), "--device", "cpu"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "#0:" in printed and "#2:" in printed and "critical neurons" in printed
    doc = json.loads(out.read_text())
    assert [r["index"] for r in doc["results"]] == [0, 2]
    assert all(len(r["counts"]) == 1 and r["neurons"] and r["top_layer"] for r in doc["results"])
    assert main(["localize", "--checkpoint", str(tiny_model_dir), "--index", "99999", "--device", "cpu"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_cli_localize_a_noisy_run_uses_its_trained_labels(tiny_model_dir, fashion, tmp_path, capsys):
    import shutil

    from workbench.cli import main
    from workbench.data.noise import flip_labels

    folder = tmp_path / "noisy"
    shutil.copytree(tiny_model_dir, folder)
    noise = flip_labels(fashion.train_y[:2000], 0.1, 10, seed=0)
    noise.save(folder)
    i, clean = int(noise.indices[0]), int((~noise.mask()).nonzero()[0])
    out = tmp_path / "n.json"
    assert main(["localize", "--checkpoint", str(folder), "--indices", f"{i},{clean}", "--split", "train",
                 "--label", "true", "--repeats", "1", "--quick", "--json", str(out), "--device", "cpu"]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["noisy_label"] for r in rows] == [True, False]
    assert rows[0]["label"] == int(noise.noisy[0]) != int(fashion.train_y[i])  # the label it was trained on
    assert rows[1]["label"] == int(fashion.train_y[clean])
    assert main(["localize", "--checkpoint", str(folder), "--index", "2000", "--split", "train"]) == 2
    assert "0..1999" in capsys.readouterr().err
