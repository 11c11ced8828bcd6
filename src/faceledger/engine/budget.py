"""A cooperative CPU-time budget for analysing one image.

dlib's detectors and the descriptor network cannot be interrupted, so the
engine checks the budget between stages (after detection, before the CNN
fallback, before each face, between descriptor batches). Each stage is
itself bounded by the detectors' pixel budgets, so a request overshoots its
budget by at most one stage. CPU time of the calling thread, not wall time:
a busy machine, or other requests analysed in other threads, do not make an
image fail, only work the image itself causes (helper threads of a runtime
are not counted, so the budget errs on the lenient side). The wall-clock
backstop for a worker that hangs is the service's, not this.
"""

from __future__ import annotations

import time

from ..errors import AnalysisBudgetError


class CpuBudget:
    """``check()`` raises :class:`AnalysisBudgetError` once ``seconds`` of CPU time are spent.

    ``seconds`` of 0 or less means no budget.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = time.thread_time()

    def spent(self) -> float:
        return time.thread_time() - self._start

    def check(self, stage: str) -> None:
        if self.seconds > 0 and self.spent() > self.seconds:
            raise AnalysisBudgetError(
                f"Analysing the image used more than its {self.seconds:g} s CPU budget ({stage}); "
                "send a smaller or less detailed image (FACELEDGER_ENGINE_CPU_BUDGET_S sets the budget)."
            )
