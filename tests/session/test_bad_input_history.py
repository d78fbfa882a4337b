"""Bad input: shared history folders. A history file is data; it can never make the session
read or write outside its folder, and each malformed field gets one error naming it."""
from __future__ import annotations

import contextlib
import json
import os
import stat
import tracemalloc
from pathlib import Path

import pytest
import torch

from tests.support.bad_input import refused, tree
from tests.support.settings import CFG
from tests.support.weights import runner_up
from workbench.session import MAX_ATTEMPTS, EditSession
from workbench.session.edit_record import EditRecord
from workbench.training import read_card



@pytest.fixture()
def saved(tiny_model, tiny_model_dir, fashion_small, tmp_path):
    """(session with two applied edits and one undone, its saved history folder h, a fresh
    session to load into, and a 'victim' model folder next to the history)."""
    s = EditSession(tiny_model, fashion_small, card=read_card(tiny_model_dir), checkpoint=tiny_model_dir,
                    config=CFG, limit=100)
    for i in range(3):
        assert s.edit_index(i, runner_up(s, i)).success
    s.undo()
    s.save(tmp_path / "h")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "model.safetensors").write_bytes(b"the user's own model")
    from workbench.training import load_model
    fresh = EditSession(load_model(tiny_model_dir)[0], fashion_small, card=read_card(tiny_model_dir),
                        checkpoint=tiny_model_dir, config=CFG, limit=100)
    fresh.edit_index(5, runner_up(fresh, 5))  # the fresh session has its own edit to lose
    return s, tmp_path / "h", fresh, victim


def _doc(h: Path) -> dict:
    return json.loads((h / "history.json").read_text())


def _write(h: Path, doc: dict) -> None:
    (h / "history.json").write_text(json.dumps(doc))


def test_a_uid_holding_a_path_is_refused_and_nothing_outside_is_written(saved, tmp_path):
    s, h, fresh, victim = saved
    doc = _doc(h)
    doc["applied"][0]["uid"] = "../../victim/model"
    _write(h, doc)
    with refused(r"applied edit #0: field 'uid' must be 8-64 lowercase hex.*may not hold a path",
                 root=tmp_path, session=fresh):
        fresh.load_history(h)
    fresh.save(tmp_path / "mine")  # the next save writes only inside its own folder
    assert (victim / "model.safetensors").read_bytes() == b"the user's own model"
    assert set(os.listdir(tmp_path)) == {"h", "victim", "mine"}


def test_a_record_with_a_path_uid_is_never_written(saved, tmp_path):
    s, h, fresh, victim = saved
    bad = EditRecord(s.history[0].result, 0, s.history[0].target, uid="../victim/model")
    s.history.append(bad)
    with refused(r"field 'uid' must be 8-64 lowercase hex", root=tmp_path, session=s):
        s.save(h)
    s.history.pop()


@pytest.mark.parametrize("key", ["file", "preds_file"])
def test_a_file_name_not_derived_from_the_uid_is_refused(saved, tmp_path, key):
    s, h, fresh, _ = saved
    doc = _doc(h)
    doc["applied"][1][key] = "../victim/model.safetensors"
    _write(h, doc)
    with refused(rf"applied edit #1: field '{key}' must be '(edits|reports)/[0-9a-f]+\.safetensors' "
                 r"\(derived from the uid\)", root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_a_symlink_leading_outside_is_refused(saved, tmp_path):
    s, h, fresh, victim = saved
    name = _doc(h)["applied"][0]["file"]
    target = victim / "elsewhere.safetensors"
    target.write_bytes((h / name).read_bytes())  # same bytes: only the location is wrong
    (h / name).unlink()
    (h / name).symlink_to(target)
    with refused(r"resolves to .*outside the history folder", root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_a_symlinked_edits_folder_leading_outside_is_refused(saved, tmp_path):
    s, h, fresh, victim = saved
    (h / "edits").rename(victim / "edits")
    (h / "edits").symlink_to(victim / "edits", target_is_directory=True)
    with refused(r"outside the history folder", root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_saving_over_a_history_with_a_symlinked_edits_folder_writes_nothing_outside(saved, tmp_path):
    s, h, fresh, victim = saved
    (h / "edits").rename(victim / "edits")
    (h / "edits").symlink_to(victim / "edits", target_is_directory=True)
    before = tree(victim)
    s.save(h)  # replaces the folder: the old symlink goes, real files are written inside h
    assert tree(victim) == before and not (h / "edits").is_symlink()
    assert len(list((h / "edits").iterdir())) == len(s.history) + len(s.redo_stack)


def _set(where: str, key: str, value):
    def change(doc: dict) -> None:
        entry = doc[where][0]
        if key.startswith("config."):
            entry["config"][key.split(".", 1)[1]] = value
        else:
            entry[key] = value
    return change


FIELD_CASES = [
    ("applied", "steps", "3", r"field 'steps' must be an integer >= 0, got '3' \(str\)"),
    ("applied", "steps", -1, r"field 'steps' must be an integer >= 0"),
    ("applied", "losses", "0.5", r"field 'losses' must be a list of numbers"),
    ("applied", "losses", [0.1, "x"], r"field 'losses' must be a list of numbers"),
    ("applied", "seconds", "1.2", r"field 'seconds' must be a finite number >= 0"),
    ("applied", "timestamp", "yesterday", r"field 'timestamp' must be a finite number >= 0"),
    ("applied", "success", "no", r"field 'success' must be true or false, got 'no'"),
    ("applied", "success", False, r"field 'success' is False, but only successful edits are applied"),
    ("applied", "finite", 1, r"field 'finite' must be true or false"),
    ("applied", "config.layers", "chain9", r"field 'config.layers' is 'chain9': unknown layer group"),
    ("applied", "config.lr", "0.01", r"field 'config.lr' must be a number or null"),
    ("applied", "config.max_steps", 2.5, r"field 'config.max_steps' must be an integer"),
    ("applied", "config.max_steps", 10 ** 9, r"field 'config' is not a valid editor setting.*max_steps"),
    ("applied", "y_ref", [99], r"field 'y_ref' holds \[99\], not all valid classes"),
    ("applied", "y_ref", "3", r"field 'y_ref' must be a non-empty list of integer labels"),
    ("applied", "index", "12", r"field 'index' must be null, an integer >= 0"),
    ("applied", "batch", "yes", r"field 'batch' must be true or false"),
    ("applied", "message", 5, r"field 'message' must be a string"),
    ("applied", "sha256", "abc", r"field 'sha256' must be a SHA-256 in hex"),
    ("redo", "uid", 7, r"redo edit #0: field 'uid' must be 8-64 lowercase hex"),
    ("redo", "config", None, r"redo edit #0: field 'config' must be an object"),
]


@pytest.mark.parametrize("where, key, value, match", FIELD_CASES, ids=[f"{w}-{k}-{v!r}" for w, k, v, _ in FIELD_CASES])
def test_each_malformed_field_is_named(saved, tmp_path, where, key, value, match):
    s, h, fresh, _ = saved
    doc = _doc(h)
    _set(where, key, value)(doc)
    _write(h, doc)
    with refused(rf"{where} edit #0: {match}" if not match.startswith(where) else match,
                 root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_a_missing_field_is_named(saved, tmp_path):
    s, h, fresh, _ = saved
    doc = _doc(h)
    del doc["applied"][0]["steps"]
    _write(h, doc)
    with refused(r"applied edit #0: field 'steps' is missing", root=tmp_path, session=fresh):
        fresh.load_history(h)


@pytest.mark.parametrize("key, value, match", [
    ("applied", {"a": 1}, r"field 'applied' of history.json must be a list"),
    ("checkpoint", 5, r"field 'checkpoint' of history.json must be a string or null"),
    ("saved_at", "noon", r"field 'saved_at' of history.json must be a number or null"),
])
def test_malformed_header_fields_are_named(saved, tmp_path, key, value, match):
    s, h, fresh, _ = saved
    doc = _doc(h)
    doc[key] = value
    _write(h, doc)
    with refused(match, root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_two_entries_sharing_a_uid_are_refused(saved, tmp_path):
    s, h, fresh, _ = saved
    doc = _doc(h)
    doc["attempts"] = [dict(doc["applied"][0], success=False)]
    for k in ("file", "sha256", "preds_file", "preds_sha256"):
        doc["attempts"][0].pop(k, None)
    _write(h, doc)
    with refused(r"uid '[0-9a-f]+' appears twice", root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_saved_folders_get_the_users_normal_permissions(saved, tmp_path):
    s, h, fresh, _ = saved
    umask = os.umask(0o022)
    try:
        s.save(tmp_path / "perm")
        os.umask(0o027)
        s.save(tmp_path / "perm27")
    finally:
        os.umask(umask)
    for folder, mode in ((tmp_path / "perm", 0o755), (tmp_path / "perm27", 0o750)):
        assert stat.S_IMODE(folder.stat().st_mode) == mode, oct(folder.stat().st_mode)
        for sub in ("edits", "reports"):
            assert stat.S_IMODE((folder / sub).stat().st_mode) == mode
        assert stat.S_IMODE((folder / "history.json").stat().st_mode) == mode & 0o666


def test_a_valid_history_still_loads_bit_for_bit(saved):
    s, h, fresh, _ = saved
    fresh.load_history(h)
    assert [r.uid for r in fresh.history] == [r.uid for r in s.history]
    assert all(torch_equal(a, b) for a, b in zip(fresh.model.state_dict().values(), s.model.state_dict().values()))


def torch_equal(a, b) -> bool:
    import torch
    return torch.equal(a.cpu(), b.cpu())


# -- input that costs memory or hangs ----------------------------------------------------------

@contextlib.contextmanager
def _read_nothing_big(h: Path, limit_mib: float = 8):
    """Fail if Python allocates more than ``limit_mib`` MiB at once inside the block, or if any
    file under ``h`` changes (checked by size and modification time: the files are huge)."""
    def stats() -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in h.rglob("*")}

    before = stats()
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit_mib * 2**20, f"{peak / 2**20:.0f} MiB allocated: the file was read"
    assert stats() == before


def test_a_huge_sparse_tensor_file_is_refused_before_it_is_read(saved, tmp_path):
    s, h, fresh, victim = saved
    name = _doc(h)["applied"][0]["file"]
    with open(h / name, "r+b") as f:  # 2 GB of holes after the real tensors: no disk, no memory
        f.truncate(2 * 2**30)
    with refused(r"applied edit #0: .*\.safetensors is 2147483648 bytes, but its header declares \d+; the file was "
                 r"altered", root=victim, session=fresh), _read_nothing_big(h):
        fresh.load_history(h)


def test_a_tensor_file_declaring_a_huge_tensor_is_refused_before_it_is_read(saved, tmp_path):
    s, h, fresh, victim = saved
    doc = _doc(h)
    e = doc["applied"][0]
    big = 2**29  # float32: 2 GiB, declared consistently, so only the declared shape gives it away
    header = json.dumps({n: {"dtype": "F32", "shape": [big], "data_offsets": [0, 4 * big]} for n in e["params"][:1]})
    header += " " * (-len(header) % 8)
    with open(h / e["file"], "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header.encode())
        f.truncate(8 + len(header) + 4 * big)
    e["params"] = e["params"][:1]
    _write(h, doc)
    with refused(rf"{e['file']} \(applied edit #0\) declares .*F32 \[{big}\].*which does not fit this model",
                 root=victim, session=fresh), _read_nothing_big(h):
        fresh.load_history(h)


def test_a_huge_history_json_is_refused_before_it_is_read(saved, tmp_path):
    s, h, fresh, victim = saved
    with open(h / "history.json", "r+b") as f:
        f.truncate(2 * 2**30)
    with refused(r"history.json is 2048.0 MiB, above the limit of 64 MiB; it was not read", root=victim,
                 session=fresh), _read_nothing_big(h):
        fresh.load_history(h)


@pytest.mark.parametrize("depth, match", [
    (200_000, r"history.json nests objects or lists too deeply to read"),
    (40, r"history.json nests objects or lists more than 32 deep"),
])
def test_deeply_nested_json_is_a_value_error(saved, tmp_path, depth, match):
    s, h, fresh, _ = saved
    text = (h / "history.json").read_text()
    (h / "history.json").write_text(text.replace('"redo":', '"deep": ' + "[" * depth + "]" * depth + ', "redo":', 1))
    with refused(match, root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_more_attempts_than_a_session_keeps_are_refused(saved, tmp_path):
    s, h, fresh, _ = saved
    doc = _doc(h)
    one = {k: v for k, v in doc["applied"][0].items() if k not in ("file", "sha256", "preds_file", "preds_sha256",
                                                                    "before_sha256")}
    doc["attempts"] = [dict(one, uid=f"{i:012x}", success=False) for i in range(MAX_ATTEMPTS + 1)]
    _write(h, doc)
    with refused(rf"history.json lists {MAX_ATTEMPTS + 1} failed attempts; a session keeps at most {MAX_ATTEMPTS}",
                 root=tmp_path, session=fresh):
        fresh.load_history(h)
    doc["attempts"] = doc["attempts"][:MAX_ATTEMPTS]  # exactly the bound loads
    _write(h, doc)
    fresh.load_history(h)
    assert len(fresh.attempts) == MAX_ATTEMPTS


# -- a history applied where it does not belong --------------------------------------------------

def test_a_rewritten_base_hash_does_not_apply_a_history_to_other_weights(saved, tiny_model_dir, fashion_small, tmp_path):
    s, h, _, _ = saved
    from workbench.training import load_model
    other = load_model(tiny_model_dir)[0]
    with torch.no_grad():  # same architecture, other weights (1% off: the edit guard alone would let it pass)
        for p in other.parameters():
            p.mul_(1.01)
    victim = EditSession(other, fashion_small, card=read_card(tiny_model_dir), config=CFG, limit=100)
    victim.edit_index(5, runner_up(victim, 5))
    doc = _doc(h)
    doc["base_sha256"] = victim.base_hash  # the field claims the victim's weights
    _write(h, doc)
    with refused(r"applied edit #0 was made on other weights than this session's \(its before_sha256 does not "
                 r"match the weights it would change\)", root=tmp_path, session=victim):
        victim.load_history(h)


def test_a_history_without_per_edit_weight_hashes_is_refused(saved, tmp_path):
    s, h, fresh, _ = saved
    doc = _doc(h)
    del doc["applied"][0]["before_sha256"]
    _write(h, doc)
    with refused(r"applied edit #0: field 'before_sha256' must be a SHA-256", root=tmp_path, session=fresh):
        fresh.load_history(h)
    doc["version"] = 1  # the format before the hashes
    _write(h, doc)
    with refused(r"history format version 1 is not supported: this code reads version 2, which records a hash",
                 root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_saved_tensors_the_edit_guard_refuses_are_not_loaded(saved, tmp_path):
    import hashlib

    from safetensors.torch import load_file, save_file
    s, h, fresh, _ = saved
    doc = _doc(h)
    e = doc["applied"][0]
    tensors = {k: torch.full_like(v, 1e38) for k, v in load_file(str(h / e["file"])).items()}  # finite, huge
    save_file(tensors, str(h / e["file"]), metadata={"uid": e["uid"]})
    e["sha256"] = hashlib.sha256((h / e["file"]).read_bytes()).hexdigest()
    _write(h, doc)
    with refused(r"applied edit #0 changes the edited weights by [0-9.e+]+x their norm; the edit guard refuses such "
                 r"an edit \(it allows 1x\), so the history was not loaded", root=tmp_path, session=fresh):
        fresh.load_history(h)


def test_a_history_of_a_larger_split_is_refused_on_a_smaller_one(saved, tiny_model_dir, fashion_small, tmp_path):
    s, h, _, _ = saved
    from workbench.training import load_model
    small = EditSession(load_model(tiny_model_dir)[0], fashion_small, card=read_card(tiny_model_dir), config=CFG,
                        limit=2)  # the history edits images 0, 1 and 2 (2 undone)
    small.edit_index(0, runner_up(small, 0))
    with refused(r"field 'index' names image 2, but this session's split holds 2 images \(0..1\); the history was "
                 r"made on a larger split: open the workbench with limit=3 or more", root=tmp_path, session=small):
        small.load_history(h)
