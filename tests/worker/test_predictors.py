"""worker/predictors.py: models stay loaded, least recently used dropped first."""

from __future__ import annotations

from pathlib import Path

from worker.predictors import PredictorCache


def test_models_are_loaded_once_and_evicted_lru(tiny_model: Path):
    cache = PredictorCache(size=2, device="cpu")
    first = cache.get("v1", tiny_model)
    assert cache.get("v1", tiny_model) is first
    cache.get("v2", tiny_model)
    cache.get("v1", tiny_model)  # v1 is now the most recently used
    cache.get("v3", tiny_model)  # drops v2
    assert list(cache.loaded) == ["v1", "v3"]
    assert cache.loads == 3
    assert cache.get("v1", tiny_model) is first
