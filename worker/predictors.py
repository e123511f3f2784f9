"""Loaded models kept warm in an inference worker: a small LRU cache keyed by model version id."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrc.infer import Predictor


class PredictorCache:
    """At most ``size`` predictors; the least recently used is dropped first."""

    def __init__(self, size: int, device: str) -> None:
        self.size = size
        self.device = device
        self.loaded: OrderedDict[str, Predictor] = OrderedDict()
        self.loads = 0
        self._lock = threading.Lock()

    def get(self, version_id: str, directory: Path) -> Predictor:
        """The predictor of a model version, loaded on first use."""
        from lrc.infer import Predictor

        with self._lock:
            if version_id in self.loaded:
                self.loaded.move_to_end(version_id)
                return self.loaded[version_id]
            predictor = Predictor.from_dir(directory, device=self.device)
            self.loads += 1
            self.loaded[version_id] = predictor
            while len(self.loaded) > self.size:
                self.loaded.popitem(last=False)
            return predictor
