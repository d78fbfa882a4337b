"""Edit metrics (drawdown, success, steps) and the fast evaluator."""
from .predict import error_rate, predict_logits

__all__ = ["error_rate", "predict_logits"]
