"""The integer-won rules of ``model.money``, edge by edge (docs/accounting.md).

Each table row is one rule's boundary: the half that rounds up, the value just below it,
the largest amounts (no float anywhere), and the worked example of docs/accounting.md.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axcenter.model.money import BP, gpu_seconds, rate, split


@pytest.mark.parametrize(
    ("gpus", "seconds", "expected"),
    [
        (1, 0.0, 0),
        (1, 0.49, 0),
        (1, 0.5, 1),  # half a second rounds up
        (1, 1.5, 2),  # half up, not to even
        (1, 2.5, 3),
        (2, 1.5, 4),  # the run time is rounded first, then multiplied by the GPUs
        (8, 3600.4, 28_800),
        (0, 100.0, 0),  # CPU-only runs use no GPU-seconds
        (2, 5420.5, 10_842),  # the worked example's two runs
        (2, 940.4, 1_880),
    ],
)
def test_gpu_seconds(gpus: int, seconds: float, expected: int) -> None:
    assert gpu_seconds(gpus, seconds) == expected


@pytest.mark.parametrize(
    ("gpu_secs", "won_per_hour", "expected"),
    [
        (0, 3_000, 0),
        (3_600, 1_000, 1_000),
        (1, 1_800, 1),  # exactly half a won rounds up
        (1, 1_799, 0),  # just below half
        (1, 5_400, 2),  # 1.5 won
        (7, 2_571, 5),  # 4.9991...
        (10_842, 2_750, 8_282),  # the worked example: 8,282.08 won
        (14_430, 2_750, 11_023),  # its hold: 11,022.9 won
        (1_880, 2_750, 1_436),  # its second run: 1,436.1 won
        (360_000, 2_750, 275_000),  # its grant
        (10**12, 10**9, 277_777_777_777_777_778),  # integers only: no float rounding
    ],
)
def test_rate(gpu_secs: int, won_per_hour: int, expected: int) -> None:
    assert rate(gpu_secs, won_per_hour) == expected


@pytest.mark.parametrize(
    ("amount", "bp", "public", "copay"),
    [
        (10, 8_000, 8, 2),
        (6_001, 8_000, 4_800, 1_201),  # 4,800.8: the program pays the floor
        (1, 5_000, 0, 1),
        (3, 3_333, 0, 3),
        (100, BP, 100, 0),
        (100, 0, 0, 100),
        (0, 8_000, 0, 0),
        (8_282, 8_000, 6_625, 1_657),  # the worked example's two runs
        (1_436, 8_000, 1_148, 288),
        (999_999_999_999_999, 7_777, 777_699_999_999_999, 222_300_000_000_000),
    ],
)
def test_split(amount: int, bp: int, public: int, copay: int) -> None:
    assert split(amount, bp) == (public, copay)


@pytest.mark.parametrize(
    "call",
    [
        lambda: gpu_seconds(-1, 1.0),
        lambda: gpu_seconds(1, -0.1),
        lambda: rate(-1, 100),
        lambda: rate(1, -100),
        lambda: split(100, -1),
        lambda: split(100, BP + 1),
    ],
)
def test_negative_or_impossible_inputs_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


@given(st.integers(0, 10**15), st.integers(0, BP))
def test_split_parts_always_sum_to_the_amount(amount: int, bp: int) -> None:
    public, copay = split(amount, bp)
    assert public + copay == amount
    assert 0 <= public <= amount
    # the public part is the floor of the exact share
    assert public * BP <= amount * bp < (public + 1) * BP


@given(st.integers(0, 10**12), st.integers(0, 10**9))
def test_rate_is_the_nearest_won(gpu_secs: int, won_per_hour: int) -> None:
    won = rate(gpu_secs, won_per_hour)
    exact_x2 = 2 * gpu_secs * won_per_hour  # twice the exact amount, in won x 3600
    assert 2 * won * 3600 - 3600 <= exact_x2 < 2 * won * 3600 + 3600


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_rate_is_monotonic(a: int, b: int, price: int) -> None:
    low, high = sorted((a, b))
    assert rate(low, price) <= rate(high, price)
