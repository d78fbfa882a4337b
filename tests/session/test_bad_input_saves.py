"""Bad input: saves that collide or die. Two students on one server, a save killed at any step,
two processes writing one folder: every save either completes or leaves the previous one whole,
nothing is written outside the folder, and nothing is replaced without an explicit overwrite."""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import shutil
import signal
import time

import pytest
import torch

from tests.support.bad_input import refused, tree
from tests.support.settings import CFG
from tests.support.weights import runner_up, same_weights, weights
from workbench.folder_io import LOCK_FILE, TMP_PREFIX, FolderBusy, FolderExists, folder_lock
from workbench.session import EditSession, state_hash
from workbench.training import load_model, read_card
from workbench.training.model_files import PREVIOUS_DIR, interrupted_export

KILLED = 77  # exit status of a child killed at its chosen step


@contextlib.contextmanager
def _replace_fails_at(monkeypatch, k: int):
    """``os.replace`` raises "No space left on device" at its ``k``-th call (1-based) inside the block."""
    real, calls = os.replace, [0]

    def fail_at_k(*args, **kw):
        calls[0] += 1
        if calls[0] == k:
            raise OSError(28, "No space left on device")
        return real(*args, **kw)

    monkeypatch.setattr(os, "replace", fail_at_k)
    try:
        yield
    finally:
        monkeypatch.setattr(os, "replace", real)


def _session(tiny_model_dir, fashion_small) -> EditSession:
    return EditSession(load_model(tiny_model_dir)[0], fashion_small, card=read_card(tiny_model_dir),
                       checkpoint=tiny_model_dir, config=CFG, limit=100)


def _state(s: EditSession) -> tuple[list[str], list[str], dict[str, torch.Tensor]]:
    return [r.uid for r in s.history], [r.uid for r in s.redo_stack], weights(s.model)


def _same(a, b) -> bool:
    return a[0] == b[0] and a[1] == b[1] and same_weights(a[2], b[2])


@pytest.fixture()
def two_states(tiny_model_dir, fashion_small, tmp_path):
    """(session, state A saved in tmp_path/"parent"/"h", state B = the session now (other edits: one
    applied, one undone), a reader session)."""
    s = _session(tiny_model_dir, fashion_small)
    for i in range(2):
        assert s.edit_index(i, runner_up(s, i)).success
    h = tmp_path / "parent" / "h"
    s.save(h)
    a = _state(s)
    s.undo(), s.undo()  # B shares no file with A: saving B removes A's files (after its commit)
    for i in (2, 3):
        assert s.edit_index(i, runner_up(s, i)).success
    s.undo()
    reader = EditSession(load_model(tiny_model_dir)[0], card=read_card(tiny_model_dir), checkpoint=tiny_model_dir)
    return s, h, a, _state(s), reader


# -- two students, one name --------------------------------------------------------------------

def _student(model_dir: str, folder: str, export: str, rank: int, barrier, results) -> None:
    """One kernel: edit an image, then save and export to the shared names at the same moment."""
    torch.set_num_threads(1)
    model, card = load_model(model_dir)
    s = EditSession(model, card=card, checkpoint=model_dir, config=CFG, device="cpu")
    x = torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(rank))
    s.edit(x, int(s.probabilities(x).argsort(descending=True)[1]))
    outcome = {"uids": [r.uid for r in (*s.history, *s.attempts)], "weights": state_hash(s.model.state_dict())}
    for key, act in (("save", lambda: s.save(folder)), ("export", lambda: s.export(export))):
        barrier.wait(60)
        try:
            act()
            outcome[key] = "done"
        except FolderExists as err:
            outcome[key] = f"refused: {err}"
        except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
            outcome[key] = f"error {type(err).__name__}: {err}"
    results.put((rank, outcome))


def _run_students(target, args_of, n: int = 2, timeout: float = 120) -> dict[int, dict]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(rank), barrier, results)) for rank in range(n)]
    for p in procs:
        p.start()
    try:
        out = dict(results.get(timeout=timeout) for _ in procs)
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    return out


def test_two_students_saving_and_exporting_under_one_name_at_once_never_replace_each_other(tiny_model_dir, tmp_path):
    folder, export = tmp_path / "out" / "lesson" / "history", tmp_path / "out" / "lesson" / "model"
    res = _run_students(_student, lambda rank: (str(tiny_model_dir), str(folder), str(export), rank))
    for key, match in (("save", r"already holds a saved edit history .*nothing was written. Pass overwrite=True"),
                       ("export", r"already holds a model .*nothing was written. Pass overwrite=True")):
        outcomes = sorted(r[key] for r in res.values())
        assert outcomes[0] == "done" and outcomes[1].startswith("refused: "), outcomes
        assert re.search(match, outcomes[1]), outcomes[1]
    winner = next(r for r in res.values() if r["save"] == "done")
    reader = EditSession(load_model(tiny_model_dir)[0], card=read_card(tiny_model_dir))
    reader.load_history(folder)  # the history on disk is the winner's, whole
    assert [r.uid for r in (*reader.history, *reader.attempts)] == winner["uids"]
    model, card = load_model(export)  # and the export is one student's, whole
    exporter = next(r for r in res.values() if r["export"] == "done")
    assert state_hash(model.state_dict()) == exporter["weights"]
    assert sorted(p.name for p in (tmp_path / "out" / "lesson").iterdir()) == ["history", "model"]


def _hammer(model_dir: str, folder: str, rounds: int, rank: int, barrier, results) -> None:
    """Save with overwrite and load back, ``rounds`` times, while another process does the same."""
    torch.set_num_threads(1)
    model, card = load_model(model_dir)
    s = EditSession(model, card=card, config=CFG, device="cpu")
    reader = EditSession(load_model(model_dir)[0], card=card, device="cpu")
    x = torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(rank))
    s.edit(x, int(s.probabilities(x).argsort(descending=True)[1 + rank]))
    errors = []
    barrier.wait(60)
    for _ in range(rounds):
        for act in (lambda: s.save(folder, overwrite=True), lambda: reader.load_history(folder)):
            try:
                act()
            except Exception as err:  # noqa: BLE001 - any error fails the test
                errors.append(f"{type(err).__name__}: {err}")
    results.put((rank, {"errors": errors, "uids": [r.uid for r in (*s.history, *s.attempts)]}))


def test_two_processes_saving_to_one_folder_over_and_over_never_fail(tiny_model_dir, tmp_path):
    folder = tmp_path / "shared"
    res = _run_students(_hammer, lambda rank: (str(tiny_model_dir), str(folder), 40, rank))
    assert [r["errors"] for r in res.values()] == [[], []]
    reader = EditSession(load_model(tiny_model_dir)[0], card=read_card(tiny_model_dir))
    reader.load_history(folder)
    assert [r.uid for r in (*reader.history, *reader.attempts)] in [r["uids"] for r in res.values()]
    assert not [p for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]


def test_a_save_waits_for_the_folder_lock_and_says_so_when_it_stays_taken(two_states, tmp_path, monkeypatch):
    s, h, a, b, reader = two_states
    monkeypatch.setattr("workbench.folder_io.LOCK_TIMEOUT_S", 0.3)
    m = s.export(tmp_path / "parent" / "h-model")
    with folder_lock(h, "another process"), folder_lock(m, "another process"):  # as other processes' saves would
        with refused(r"the save waited 0.3 s for .*another process is saving there and has not finished; try "
                     r"again in a moment", root=tmp_path, session=s, exc=FolderBusy):
            s.save(h)
        with refused(r"saving the model waited 0.3 s", root=tmp_path, session=s, exc=FolderBusy):
            s.export(m)
    s.save(h)  # free again: it goes through
    reader.load_history(h)
    assert _same(_state(reader), b)


# -- no overwrite without consent --------------------------------------------------------------

def test_saving_over_another_sessions_history_is_refused_until_overwrite(two_states, tiny_model_dir, fashion_small,
                                                                         tmp_path):
    s, h, a, b, reader = two_states
    other = _session(tiny_model_dir, fashion_small)
    assert other.edit_index(7, runner_up(other, 7)).success
    with refused(r"already holds a saved edit history \(another session's, or an earlier one\); nothing was "
                 r"written. Pass overwrite=True to replace it, or save to a new folder", root=tmp_path, session=other,
                 exc=FolderExists):
        other.save(h)
    s.save(h)  # its own earlier save: replaced without asking
    reader.load_history(h)
    assert _same(_state(reader), b)
    other.save(h, overwrite=True)  # on purpose
    reader.load_history(h)
    assert _same(_state(reader), _state(other))
    with refused(r"already holds a saved edit history", root=tmp_path, session=s, exc=FolderExists):
        s.save(h)  # the folder is no longer s's own save: s must ask too


def test_exporting_over_another_model_is_refused_until_overwrite(two_states, tiny_model_dir, fashion_small, tmp_path):
    s, h, a, b, reader = two_states
    out = tmp_path / "parent" / "edited"
    s.export(out)
    other = _session(tiny_model_dir, fashion_small)
    with refused(r"already holds a model \(model.safetensors, card.json\); nothing was written. Pass "
                 r"overwrite=True to replace it, or export to a new folder", root=tmp_path, session=other,
                 exc=FolderExists):
        other.export(out)
    s.redo()
    s.export(out)  # its own export: replaced
    assert same_weights(weights(load_model(out)[0]), weights(s.model))
    other.export(out, overwrite=True)
    assert same_weights(weights(load_model(out)[0]), weights(other.model))


# -- killed or failing at every step -----------------------------------------------------------

STEP_CALLS = ("open", "write", "fsync", "replace", "rename", "unlink", "rmdir", "mkdir", "link")


@contextlib.contextmanager
def _steps(on_step):
    """Call ``on_step(name)`` before every file-system call a save makes through ``os``."""
    saved = {n: getattr(os, n) for n in STEP_CALLS}

    def wrap(name, f):
        def step(*args, **kwargs):
            on_step(name)
            return f(*args, **kwargs)
        return step

    for n, f in saved.items():
        setattr(os, n, wrap(n, f))
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(os, n, f)


def _count_steps(action) -> int:
    n = [0]
    with _steps(lambda _name: n.__setitem__(0, n[0] + 1)):
        action()
    return n[0]


def _killed_at(k: int, action) -> int:
    """Run ``action`` in a forked child that dies (``os._exit``, no clean-up) at its k-th step."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            n = [0]

            def on_step(_name):
                n[0] += 1
                if n[0] == k:
                    os._exit(KILLED)

            with _steps(on_step):
                action()
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"the child killed at step {k} hung")


def test_a_save_killed_at_every_step_leaves_the_previous_or_the_new_history(two_states, tmp_path):
    s, h, a, b, reader = two_states
    parent, work = h.parent, h
    original = tmp_path / "original"
    shutil.copytree(h, original)
    shutil.copytree(original, tmp_path / "probe")
    total = _count_steps(lambda: s.save(tmp_path / "probe", overwrite=True))
    assert total > 10
    seen = set()
    for k in range(1, total + 2):
        shutil.rmtree(work)
        shutil.copytree(original, work)
        code = _killed_at(k, lambda: s.save(work, overwrite=True))
        assert code == (KILLED if k <= total else 0), (k, code)
        assert sorted(p.name for p in parent.iterdir()) == ["h"], f"step {k} wrote beside the folder"
        reader.load_history(work)
        got = _state(reader)
        assert _same(got, a) or _same(got, b), f"killed at step {k}: neither the old nor the new history"
        seen.add("old" if _same(got, a) else "new")
        s.save(work, overwrite=True)  # the next save clears what the killed one left
        assert not [p for p in work.iterdir() if p.name.startswith(TMP_PREFIX)]
        reader.load_history(work)
        assert _same(_state(reader), b)
    assert seen == {"old", "new"}


def test_a_save_failing_at_every_file_replace_keeps_the_previous_history(two_states, tmp_path, monkeypatch):
    s, h, a, b, reader = two_states
    real = os.replace
    calls = [0]

    def count(*args, **kw):
        calls[0] += 1
        return real(*args, **kw)

    shutil.copytree(h, tmp_path / "probe")
    monkeypatch.setattr(os, "replace", count)
    s.save(tmp_path / "probe", overwrite=True)
    total = calls[0]
    assert total >= 3  # the new tensor files, then history.json
    for k in range(1, total + 1):
        with _replace_fails_at(monkeypatch, k), refused(r"No space left on device", root=h, session=s, exc=OSError):
            s.save(h)
        reader.load_history(h)
        assert _same(_state(reader), a), f"a failure at replace #{k} changed the saved history"


def test_an_export_killed_at_every_step_keeps_the_previous_model(two_states, tmp_path):
    s, h, a, b, reader = two_states
    parent = tmp_path / "exports"
    out, original = parent / "edited", tmp_path / "original-export"
    s.undo()
    s.export(original, overwrite=True)
    old_weights = weights(s.model)
    s.redo()
    new_weights = weights(s.model)
    shutil.copytree(original, tmp_path / "probe")
    total = _count_steps(lambda: s.export(tmp_path / "probe", overwrite=True))
    assert total > 5
    window = 0
    for k in range(1, total + 2):
        shutil.rmtree(parent, ignore_errors=True)
        shutil.copytree(original, out)
        code = _killed_at(k, lambda: s.export(out, overwrite=True))
        assert code == (KILLED if k <= total else 0), (k, code)
        assert sorted(p.name for p in parent.iterdir()) == ["edited"], f"step {k} wrote beside the folder"
        kept = interrupted_export(out)
        if kept is None:
            got = weights(load_model(out)[0])
            assert same_weights(got, old_weights) or same_weights(got, new_weights), f"step {k}"
        else:  # killed between the two replacements: the previous model is whole, and named
            window += 1
            with pytest.raises(ValueError, match="does not match its card"):
                load_model(out)
            assert same_weights(weights(load_model(kept)[0]), old_weights)
        s.export(out, overwrite=True)  # the next export puts things right first
        assert same_weights(weights(load_model(out)[0]), new_weights)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "card.json", "model.safetensors"]
    assert window == 1


def test_an_export_failing_at_every_file_replace_keeps_the_previous_model(two_states, tmp_path, monkeypatch):
    s, h, a, b, reader = two_states
    out = tmp_path / "edited"
    s.export(out)
    before = weights(load_model(out)[0])
    s.redo()
    for k in (1, 2):  # the weights, then the card
        with _replace_fails_at(monkeypatch, k), refused(r"No space left on device", root=out, session=s,
                                                        exc=OSError):
            s.export(out)
        assert same_weights(weights(load_model(out)[0]), before), f"a failure at replace #{k} lost the export"
        assert PREVIOUS_DIR not in os.listdir(out)


def test_a_history_left_beside_the_folder_by_an_older_save_is_named(two_states, tmp_path):
    s, h, a, b, reader = two_states
    left = h.parent / ".h.old-1a2b3c4d"  # what an older version's save killed between its renames left
    h.rename(left)
    with refused(rf"history.json is missing, but a save that was interrupted left the complete history in "
                 rf"{left}.*load that folder, or rename it to h", root=tmp_path, session=reader):
        reader.load_history(h)
    reader.load_history(left)
    assert _same(_state(reader), a)


# -- the widget: a refusal in words, and an explicit Overwrite ---------------------------------

def test_two_workbenches_on_one_name_get_a_refusal_in_words_and_an_overwrite_button(tiny_model_dir, fashion_small,
                                                                                    tmp_path):
    pytest.importorskip("ipywidgets")
    pytest.importorskip("plotly")
    from workbench.widgets import Workbench, show

    def student() -> Workbench:
        w = show(tiny_model_dir, bundle=fashion_small, limit=50, device="cpu", probe_views=0, output_dir=tmp_path / "out")
        s = w.session
        s.edit_index(0, runner_up(s, 0), CFG)
        return w

    a, b = student(), student()
    assert a.history.name.value != b.history.name.value  # the default names differ, even in the same minute
    a.history.name.value = b.history.name.value = "lesson"
    for key in ("save", "export", "report"):
        a.history.buttons[key].click()
        assert a.history.messages.level == "success", a.history.messages.text
    hb = b.history
    for key, what in (("save", "an edit history"), ("export", "a model"), ("report", "a report")):
        disk = tree(tmp_path / "out")
        hb.buttons[key].click()
        assert hb.messages.level == "error" and hb.overwrite.layout.display is None, hb.messages.text
        assert re.search(rf"did not work: {what} is already saved under the name 'lesson' \(another session's, or an "
                         r"earlier one\); nothing was written. Click 'Overwrite lesson' to replace it, or type a new "
                         r"name", hb.messages.text), hb.messages.text
        assert tree(tmp_path / "out") == disk  # a's files untouched
        hb.name.value = "lesson-b"  # another name: the offer goes away
        assert hb.overwrite.layout.display == "none"
        hb.name.value = "lesson"
        hb.buttons[key].click()
        hb.overwrite.click()  # on purpose
        assert hb.messages.level == "success" and hb.overwrite.layout.display == "none", hb.messages.text
    reader = EditSession(load_model(tiny_model_dir)[0], card=read_card(tiny_model_dir))
    reader.load_history(tmp_path / "out" / "lesson" / "history")
    assert [r.uid for r in (*reader.history, *reader.attempts)] == [r.uid for r in (*b.session.history,
                                                                                     *b.session.attempts)]
    assert same_weights(weights(load_model(tmp_path / "out" / "lesson" / "model")[0]), weights(b.session.model))
    a.history.buttons["save"].click()  # a's own save was replaced: a is asked now
    assert a.history.messages.level == "error" and a.history.overwrite.layout.display is None
