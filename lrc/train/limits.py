"""Range checks shared by the training configs (torch-free: the API and the CLI run them before any work)."""

from __future__ import annotations

SEED_MAX = 2**32 - 1  # NumPy's seeds


def check_at_least(minimum: float, **values: float) -> None:
    """Each of ``values`` (named as the config field) must be ``>= minimum``.

    Raises:
        ValueError: naming the first that is not.
    """
    for name, value in values.items():
        if not value >= minimum:  # also refuses NaN
            raise ValueError(f"{name} must be >= {minimum:g}, got {value}")


def check_positive(**values: float) -> None:
    """Each of ``values`` must be ``> 0`` (spacings, scales).

    Raises:
        ValueError: naming the first that is not.
    """
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def check_seed(seed: int) -> None:
    """A seed NumPy takes: ``0 <= seed <= 2**32 - 1``.

    Raises:
        ValueError: any other.
    """
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must be in 0..{SEED_MAX}, got {seed}")
