"""Progressive open, the budgeted and cached base scores of a session, the background exact pass.

Tiny CNNs on tiny ImageFolders of PNG files written in tmp_path. A gate in a progress callback
holds a background pass at a known batch, so each test sees the state it checks, whatever the
machine's speed.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.support.progressive import BS, NORM, N, Gate, count_images, deferred, small_cnn, write_folder
from workbench.data import as_bundle
from workbench.editing import EditorConfig
from workbench.evaluation.base_scores import ScoringStopped
from workbench.session import EditSession


@pytest.fixture
def folder(tmp_path):
    x, y = write_folder(tmp_path / "data")
    return tmp_path / "data", x, y

def test_background_open_answers_the_first_page_before_the_rest_then_equals_blocking_open(folder):
    root, x, y = folder
    memory = as_bundle((x, y), val_fraction=0, **NORM)
    one, two = small_cnn(), small_cnn()  # the same weights; each session edits its own
    blocking = EditSession(one, memory, device="cpu", background=False, evaluator=deferred(one, memory))
    assert blocking.scoring_progress() == (N, N) and blocking.base_scoring.thread is None
    gate = Gate(at=2 * BS)
    s = EditSession(two, str(root), device="cpu", evaluator=deferred(two, root), first_chunk=BS, progress=gate,
                    **NORM)
    assert gate.reached.wait(30)
    scored, total = s.scoring_progress()
    assert BS <= scored <= 2 * BS < total == N  # returned after the first chunk; the rest is held by the gate
    first_page = s.current_errors(partial=True)
    want = [e for e in blocking.current_errors() if e.index < scored]
    assert first_page == want and len(first_page) > 0
    assert int(s.confusion(partial=True).sum()) == scored
    assert not s.wait_scored(timeout=0.05)  # still held
    gate.release.set()
    assert s.wait_scored(timeout=30) and s.scoring_progress() == (N, N)
    assert gate.seen == list(range(BS, N + 1, BS))  # every batch reported once, in order
    for k in ("base_logits", "base_preds", "base_margins", "base_label_quality"):
        assert torch.equal(getattr(s.evaluator, k), getattr(blocking.evaluator, k))
    assert s.current_errors() == blocking.current_errors() and torch.equal(s.confusion(), blocking.confusion())
    heard: list[tuple[int, int]] = []
    s.on_scoring_progress(lambda a, b: heard.append((a, b)))  # a late subscriber hears that it is complete
    assert heard == [(N, N)]
    i = int(torch.nonzero(s.base_preds != s.labels).flatten()[0])
    a = s.edit_index(i, int(y[i]), method="gd", lr=0.01, layers="2")
    b = blocking.edit_index(i, int(y[i]), method="gd", lr=0.01, layers="2")
    assert a.steps == b.steps and all(torch.equal(a.after[k], b.after[k]) for k in a.after)
    assert torch.equal(s.history[-1].report.preds_after, blocking.history[-1].report.preds_after)


def test_wait_scored_returns_once_the_last_batch_is_reported(folder):
    root, _, _ = folder
    heard: list[tuple[int, int]] = []

    def slow_last(scored: int, total: int) -> None:  # a view still drawing the last batch
        if scored == total:
            time.sleep(0.5)
        heard.append((scored, total))
    s = EditSession(small_cnn(), str(root), device="cpu", evaluator=deferred(small_cnn(), root), first_chunk=BS,
                    progress=slow_last, **NORM)
    assert s.base_scoring.thread is not None  # the rest is scored in the background
    assert s.wait_scored(timeout=30)
    assert heard[-1] == (N, N) and [a for a, _ in heard] == list(range(BS, N + 1, BS))


@pytest.mark.parametrize("first_wait, before_return", [(1e-9, [BS]), (60.0, [BS, 2 * BS, 3 * BS])])
def test_open_returns_after_first_wait_seconds_even_before_the_first_chunk(folder, first_wait, before_return):
    from workbench.session.background import BaseScoring

    root, x, y = folder
    main: list[int] = []  # batches reported before start() returned (on the caller's thread)
    gate = Gate(at=4 * BS)

    def heard(scored: int, total: int) -> None:
        if threading.current_thread() is threading.main_thread():
            main.append(scored)
        gate(scored, total)

    scoring = BaseScoring(deferred(small_cnn(), root), first_chunk=3 * BS, first_wait=first_wait, progress=heard)
    scoring.start()
    assert main == before_return and scoring.thread is not None  # the rest goes on in the background
    gate.release.set()
    assert scoring.wait(timeout=30) and scoring.progress() == (N, N)
    with pytest.raises(ValueError, match="first_wait must be a positive number of seconds"):
        BaseScoring(None, first_wait=0)


def test_a_tiny_memory_budget_streams_in_a_session_and_is_respected(folder):
    root, _, y = folder
    free = EditSession(small_cnn(), str(root), device="cpu", background=False, **NORM)
    records = free.evaluator.budget.held["per-image records"]
    budget = records + 1024  # the per-image records fit, no prefix activation does
    tight = EditSession(small_cnn(), str(root), device="cpu", background=False, memory_budget=budget, **NORM)
    assert tight.evaluator.budget.total == budget
    assert torch.equal(tight.evaluator.base_logits, free.evaluator.base_logits)
    i = int(torch.nonzero(free.base_preds != free.labels).flatten()[0])
    for s in (free, tight):
        s.edit_index(i, int(y[i]), method="gd", lr=0.01, layers="2")
    a, b = free.history[-1], tight.history[-1]
    assert all(torch.equal(a.result.after[k], b.result.after[k]) for k in a.result.after)
    assert torch.equal(a.report.preds_after, b.report.preds_after) and a.report.drawdown == b.report.drawdown
    assert tight.evaluator.cached_bytes() <= budget < free.evaluator.cached_bytes()
    assert any("memory-mapped" in v for v in tight.evaluator.cache_info().values())


def test_the_session_keeps_base_scores_beside_its_model_folder_and_trusts_them_only_unchanged(
        tmp_path, monkeypatch, folder):
    monkeypatch.delenv("WORKBENCH_SCORE_CACHE", raising=False)
    root, _, _ = folder
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    model = small_cnn()
    seen = count_images(model[0])  # the hook goes along with the evaluator's copy of the model

    def open_() -> EditSession:
        return EditSession(model, str(root), device="cpu", checkpoint=model_dir, background=False, **NORM)

    first = open_()
    files = list((model_dir / "score-cache").iterdir())
    assert seen[0] >= N and not first.evaluator.scores_from_cache
    assert len(files) == 1 and files[0].suffix == ".safetensors"  # one file, inside the model folder
    seen[0] = 0
    again = open_()
    assert again.evaluator.scores_from_cache and seen[0] < N  # no pass over the split (two images are checked)
    assert torch.equal(again.evaluator.base_logits, first.evaluator.base_logits)
    assert again.current_errors() == first.current_errors()

    with torch.no_grad():
        model[2].weight[0, 0, 0, 0] += 0.5  # one weight changed: scored again
    seen[0] = 0
    changed = open_()
    assert not changed.evaluator.scores_from_cache and seen[0] >= N
    path = sorted(root.rglob("*.png"))[7]  # one image changed: scored again
    Image.fromarray(torch.zeros(16, 16, 3, dtype=torch.uint8).numpy()).save(path)
    seen[0] = 0
    other = open_()
    assert not other.evaluator.scores_from_cache and seen[0] >= N
    assert not torch.equal(other.evaluator.base_logits, changed.evaluator.base_logits)
    assert len(list((model_dir / "score-cache").glob("*.safetensors"))) == 3
    assert not list((model_dir / "score-cache").glob("*.tmp"))

    monkeypatch.setattr("os.access", lambda *_a, **_k: False)  # a model folder it may not write in
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "home-cache"))
    open_()
    assert len(list((tmp_path / "home-cache" / "scores").glob("*.safetensors"))) == 1
    monkeypatch.setenv("WORKBENCH_SCORE_CACHE", "off")
    assert not open_().evaluator.scores_from_cache


def test_a_stopped_base_pass_writes_no_score_file_and_readers_are_told(folder, tmp_path):
    root, _, _ = folder
    model = small_cnn()
    gate = Gate(at=2 * BS)
    s = EditSession(model, str(root), device="cpu", evaluator=deferred(model, root, score_cache=tmp_path / "sc"),
                    first_chunk=BS, progress=gate, **NORM)
    assert gate.reached.wait(30)
    s.base_scoring.close(wait=False)
    gate.release.set()
    s.base_scoring.thread.join(30)
    assert s.scoring_progress()[0] < N
    with pytest.raises(ScoringStopped, match="stopped"):
        s.wait_scored()
    assert not (tmp_path / "sc").exists() or not any((tmp_path / "sc").iterdir())  # no file, not even a .tmp


def edited_session(root: Path, **kw) -> tuple[EditSession, int]:
    model = small_cnn()
    s = EditSession(model, str(root), device="cpu", background=False, evaluator=deferred(model, root), **NORM, **kw)
    i = int(torch.nonzero(s.base_preds != s.labels).flatten()[0])
    s.edit_index(i, int(s.labels[i]), method="gd", lr=0.01, layers="2", score=False)  # a new group: a new cut
    assert s.history[-1].report is None
    return s, i


def test_the_exact_pass_in_the_background_equals_the_blocking_one(folder):
    root, _, _ = folder
    s, i = edited_session(root)
    heard, steps = [], []
    job = s.exact_async(heard.append, lambda n, total: steps.append((n, total)))
    rec = job.result(timeout=60)
    assert job.done() and not job.cancelled() and heard == [rec] and rec is s.history[-1]
    assert steps[-1] == (N, N) and [n for n, _ in steps] == sorted(n for n, _ in steps)
    blocking, _ = edited_session(root)
    want = blocking.complete_reports()
    assert torch.equal(rec.report.preds_after, want.report.preds_after)
    assert rec.report.drawdown == want.report.drawdown and rec.step_report.drawdown == want.step_report.drawdown


def test_a_cancelled_exact_pass_leaves_no_half_written_state(folder):
    root, _, _ = folder
    s, i = edited_session(root)
    ev = s.evaluator
    caches, held = dict(ev.cache_info()), dict(ev.budget.held)
    gate, heard = Gate(at=2 * BS), []
    job = s.exact_async(heard.append, gate)
    assert gate.reached.wait(30)  # the pass is filling the new group's cache, two batches in
    assert job.cancel(wait=False)
    gate.release.set()
    assert job.wait(30) and job.cancelled() and job.done()
    with pytest.raises(CancelledError):
        job.result()
    assert s.history[-1].report is None and s.history[-1].step_report is None and heard == []
    assert ev.cache_info() == caches and ev.budget.held == held  # no half-filled cache, its budget given back
    rec = s.complete_reports()  # then the blocking pass: the same figures as a session never cancelled
    fresh, _ = edited_session(root)
    want = fresh.complete_reports()
    assert torch.equal(rec.report.preds_after, want.report.preds_after)
    assert rec.step_report.drawdown == want.step_report.drawdown

    s.reset()
    s.edit_index(i, int(s.labels[i]), method="gd", lr=0.01, layers="2", score=False)
    gate2 = Gate(at=BS)
    job2 = s.exact_async(progress=gate2)
    assert gate2.reached.wait(30)
    undo = threading.Thread(target=s.undo)  # a new click cancels the pending pass, then runs
    undo.start()
    gate2.release.set()
    undo.join(30)
    assert job2.cancelled() and s.scoring.pending is None and not s.history and s.redo_stack[-1].report is None


def test_localization_works_on_a_streamed_folder_and_equals_in_memory(folder):
    root, x, y = folder
    streamed = EditSession(small_cnn(), str(root), device="cpu", background=False, **NORM)
    memory = EditSession(small_cnn(), as_bundle((x, y), val_fraction=0, **NORM), device="cpu", background=False)
    assert streamed.bundle.is_streamed("test")
    a, b = streamed.localize(3, quick=True, repeats=2), memory.localize(3, quick=True, repeats=2)
    assert a.counts == b.counts and a.neurons == b.neurons and a.accuracy_cost == b.accuracy_cost


def test_the_first_edit_on_a_new_group_runs_its_prefix_once_and_no_base_pass(folder):
    root, _, y = folder
    config = EditorConfig(method="gd", lr=0.01, layers="6")  # opened on the head: "2" is a new group
    s = EditSession(small_cnn(), str(root), device="cpu", background=False, config=config, **NORM)
    assert s.evaluator.layers == "6"
    prefix, head = count_images(s.evaluator.model[0]), count_images(s.evaluator.model[6])
    i = int(torch.nonzero(s.base_preds != s.labels).flatten()[0])
    s.edit_index(i, int(y[i]), method="gd", lr=0.01, layers="2")  # report and step report: one pass
    assert prefix[0] == N and head[0] == N
    s.estimate_last()
    sample = len(s.estimate_sample().indices)
    assert prefix[0] == N and head[0] == N + sample  # the estimate reuses the cut's cache
    s.undo()
    j = int(torch.nonzero(s.base_preds != s.labels).flatten()[1])
    s.edit_index(j, int(y[j]), method="gd", lr=0.01, layers="2")
    assert prefix[0] == N and head[0] == 2 * N + sample  # a second edit of the group: its suffix only


def test_the_first_chunk_is_published_before_the_fast_path_check_and_the_check_precedes_the_cache():
    """The base pass yields its first chunk (the first page of mistakes) before it runs the
    fast-path check, and runs the check before the records are complete and kept, also when one
    chunk is the whole split."""
    from workbench.evaluation.base_scores import BaseScores, fill

    labels = torch.arange(6) % 3
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    for chunks in ([(0, 2), (2, 6)], [(0, 6)]):
        scores, events = BaseScores(6, 3), []
        batches = iter([(i, j, logits[i:j]) for i, j in chunks])
        gen = fill(scores, batches, labels, torch.device("cpu"), first=lambda: events.append(("check", scores.scored)),
                   keep=lambda records: events.append(("keep", len(records["preds"]))), progress=None)
        assert next(gen) == (chunks[0][1], 6)
        if len(chunks) == 2:
            assert events == []  # the first chunk is out; the check has not run yet
        assert list(gen) == [(6, 6)][:len(chunks) - 1]
        assert events == [("check", chunks[0][1]), ("keep", 6)]
        torch.testing.assert_close(scores.record("logits"), logits)


def test_a_fast_path_check_failing_in_the_background_is_kept_told_and_nothing_is_cached(folder, monkeypatch, tmp_path):
    """The check runs in the scoring thread once the first chunk is out: its failure reaches the
    progress callbacks and ``scoring_failure()``, every reader of the whole split's scores raises
    it, and the score cache stays empty."""
    import workbench.evaluation.edited_scores as edited_scores

    def broken(*args, **kw):
        raise RuntimeError("the evaluator's fast path disagrees with the full forward (a bug)")
    monkeypatch.setattr(edited_scores, "check_fast_path", broken)
    root, _, _ = folder
    heard: list[tuple[int, int]] = []
    cache = tmp_path / "scores"
    ev = deferred(small_cnn(), root, score_cache=cache)
    s = EditSession(small_cnn(), str(root), device="cpu", evaluator=ev, first_chunk=BS,
                    progress=lambda n, total: heard.append((n, total)), **NORM)
    assert s.base_scoring.thread is not None  # the rest, and the check, run in the background
    s.base_scoring.thread.join(30)
    assert isinstance(s.scoring_failure(), RuntimeError) and "fast path disagrees" in str(s.scoring_failure())
    assert heard == [(BS, N), (BS, N)]  # the first chunk, then the failure, with the scored part as it stood
    with pytest.raises(RuntimeError, match="fast path disagrees"):
        s.wait_scored()
    with pytest.raises(RuntimeError, match="fast path disagrees"):
        _ = s.evaluator.base_preds
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))
