"""Default values of the localization tools, in one place.

The paper's setting (Maini et al., ICML 2023, section 3) is ``PAPER``; the interactive panel
uses ``QUICK`` (few repeats, capped steps) so one image of the default model takes about a
second on a 2-core CPU (``benchmarks/localize_speed.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class SearchSettings:
    """Settings of :func:`~workbench.localization.critical_neurons`.

    Attributes:
        repeats: independent searches (new random batch and noise each), averaged (paper: 30).
        noise_copies: Gaussian-noised copies of ``x`` whose mean loss is the example's term (paper: 5).
        noise_std: standard deviation of that noise, on the normalised input scale.
        batch_size: size of the random reference batch of training data.
        max_neurons: stop a repeat after removing this many neurons (None: no cap).
        time_limit: stop a repeat after this many seconds (None: no cap; makes results
            depend on the machine, so it is off by default).
        cost_size: examples of other data on which the accuracy cost of the removal is measured.
    """

    repeats: int = 5
    noise_copies: int = 5
    noise_std: float = 0.1
    batch_size: int = 64
    max_neurons: int | None = 200
    time_limit: float | None = None
    cost_size: int = 512

    def override(self, **kw: Any) -> SearchSettings:
        """A copy with the given fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def validate(self) -> None:
        """Raise ValueError naming the bad field and its allowed range."""
        for name in ("repeats", "noise_copies", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if self.max_neurons is not None and self.max_neurons < 1:
            raise ValueError(f"max_neurons must be >= 1 or None, got {self.max_neurons}")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ValueError(f"time_limit must be > 0 seconds or None, got {self.time_limit}")
        if self.cost_size < 0:
            raise ValueError(f"cost_size must be >= 0, got {self.cost_size}")


DEFAULT = SearchSettings()
PAPER = SearchSettings(repeats=30, max_neurons=None)
QUICK = SearchSettings(repeats=2, batch_size=32, max_neurons=12, cost_size=128)

# layer rewinding / retraining (paper: one-cycle schedule, 20 epochs, peak lr 0.1 at epoch 10)
RETRAIN_EPOCHS = 20
RETRAIN_PEAK_LR = 0.1
RETRAIN_BATCH_SIZE = 128
EVAL_BATCH_SIZE = 512

# the error browser's "likely mislabeled" filter (a view threshold, not a finding)
MISLABELED_MAX_QUALITY = 0.05  # the model gives the image's label at most this probability

# The score the error browser's "likely mislabeled" sort uses when the model folder holds training
# dynamics (label_errors.DYNAMICS_SCORES); without them it uses self-confidence. The benchmark
# `python benchmarks/label_noise_detection.py` measures every score (AUROC, precision at the noise
# rate; results/label_noise/) and says whether its best dynamics score is this one.
MISLABEL_SCORE = "aum"
EL2N_EPOCH = 2  # EL2N is read at this (early) epoch, 1-based
