"""Edit metrics (drawdown, success, steps), the fast evaluator, the edit protocols and the one
resolver of the editor (learned > tuned > calibrated > given)."""
from .calibration import Calibration, calibrate
from .editor_resolver import EditorResolver
from .evaluator import Evaluator
from .protocols import PROTOCOLS, EditSet, make_edits, natural_edits, random_label_edits
from .reports import EditOutcome, EditReport, EvalSummary, Misclassified, format_table

__all__ = ["Calibration", "calibrate", "EditOutcome", "EditorResolver", "EditReport", "EditSet", "EvalSummary", "Evaluator", "Misclassified", "PROTOCOLS",
           "format_table", "make_edits", "natural_edits",
           "random_label_edits"]
