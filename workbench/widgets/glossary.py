"""Every term the workbench shows, with a one-line explanation (tooltips and the legend)."""
from __future__ import annotations

from .markup import Markup, join, markup

__all__ = ["GLOSSARY", "glossary_html", "term"]

GLOSSARY: dict[str, str] = {
    "drawdown": "How much the test accuracy fell because of the edit (accuracy before minus after); "
                "negative means the edit also fixed other images.",
    "pp": "Percentage points: the plain difference of two percentages (93.0% to 92.9% is -0.1 pp).",
    "estimate": "A quick drawdown from a stratified sample of the test set (each class, right and wrong, "
                "in proportion); the exact figure on every test image follows.",
    "95% interval": "The range that holds the exact drawdown in 95 of 100 such samples.",
    "other images changed": "Test images, other than the edited one, whose predicted class changed.",
    "✓ / ✗": "On a changed image: ✓ now right (the edit fixed it), ✗ now wrong (the edit broke it).",
    "steps": "How many small weight updates the editor made (it stops as soon as the target wins).",
    "bars": "Green: the true class. Red: the model's prediction. Blue: the target you picked. Grey: others.",
    "per-class change": "Change in accuracy on each class of the test set (blue: this edit, grey: all edits so far).",
    "attribution": "Which pixels pushed the model towards a label: red pushes towards it, blue away.",
    "probe": "Share of shifted, flipped or noisy copies of the edited image that now get the target: "
             "does the fix generalise beyond this one picture?",
}


def term(name: str) -> Markup:
    """``name`` as HTML with its explanation as a hover tooltip (dotted underline)."""
    return markup("<abbr class='wb-term' title='{}' style='text-decoration:underline dotted;cursor:help'>{}</abbr>",
                  GLOSSARY[name], name)


def glossary_html(names: list[str] | None = None) -> Markup:
    """A compact legend: one line per term."""
    items = names or list(GLOSSARY)
    rows = join(markup("<li><b>{}</b>: {}</li>", n, GLOSSARY[n]) for n in items)
    return markup("<ul class='wb-glossary' style='margin:2px 0;padding-left:18px'>{}</ul>", rows)
