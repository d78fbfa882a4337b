"""Put evaluation results into a model card, as the card's ``evaluation`` field.

Usage: python benchmarks/attach_eval.py assets/models/fashion-editable results/eval/*.json

Only results that belong to the folder's weights are attached: the result must name this folder
as its checkpoint, and its ``model_sha256`` must match ``model.safetensors`` (results written
before that field existed must match the card's test error instead). The card's previous
``evaluation`` field is replaced, so results of earlier weights do not linger.

The card keeps each result's summary (every field but ``per_edit``) and the path of the
result file, which keeps the raw per-edit records (in ``results/``): a card stays a few KB.
The card also records ``model_sha256`` (``load_model`` verifies it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.training.checkpoint import model_sha256  # noqa: E402


def belongs(result: dict, folder: Path, card: dict, sha: str) -> bool:
    if Path(str(result.get("checkpoint", ""))).resolve() != folder.resolve():
        return False
    if "model_sha256" in result:
        return result["model_sha256"] == sha
    return result.get("model_test_error_card") == card.get("test_error")


def summary_of(result: dict, path: Path) -> dict:
    """The result without its per-edit records, plus where they are (relative to the repo when inside it)."""
    root = Path(__file__).resolve().parents[1]
    try:
        where = str(path.resolve().relative_to(root))
    except ValueError:
        where = str(path)
    return {**{k: v for k, v in result.items() if k != "per_edit"}, "per_edit_file": where}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    folder = Path(argv[0])
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text())
    sha = model_sha256(folder)
    evaluation, skipped = {}, []
    for p in sorted(argv[1:]):
        result = json.loads(Path(p).read_text())
        if belongs(result, folder, card, sha):
            evaluation[Path(p).stem] = summary_of(result, Path(p))
        else:
            skipped.append(Path(p).name)
    if not evaluation:
        print(f"none of the {len(argv) - 1} results belong to {folder} (sha256 {sha[:12]}...); card unchanged",
              file=sys.stderr)
        return 1
    card["evaluation"] = evaluation
    card["model_sha256"] = sha
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{card_path}: attached {', '.join(evaluation)}")
    if skipped:
        print(f"skipped (other weights or checkpoint): {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
