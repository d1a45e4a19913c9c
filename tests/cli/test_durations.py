"""Parsing of the human quantities the CLI accepts: durations and memory sizes."""

from __future__ import annotations

import pytest

from axcenter.cli.durations import format_duration, parse_duration, parse_memory


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),  # a plain integer is minutes, as in Slurm
        ("0", 0),
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("1h0m5s", 3605),
        ("2h 15m", 8100),
        ("2H", 7200),
        (" 45s ", 45),
        ("01:30", 90),
        ("1:30", 90),
        ("0:05", 5),
        ("01:00:00", 3600),
        ("36:00:00", 129600),
        ("1:02:03", 3723),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "1x",
        "1h30",  # a bare number after a unit is ambiguous
        "30m1h",  # units must come largest first
        "1h1h",
        "-5",
        "1.5h",
        "1:2:3:4",
        ":30",
        "h",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (61, "1m01s"),
        (600, "10m"),
        (3600, "1h"),
        (3723, "1h02m"),
        (86400 * 7, "7d"),
        (90000, "1d01h"),
        (-3, "0s"),
    ],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, 45, 60, 61, 600, 3600, 3660, 90000, 86400 * 7])
def test_printed_durations_parse_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("512", 512),
        ("512M", 512),
        ("512m", 512),
        ("512MB", 512),
        ("16G", 16384),
        ("16GB", 16384),
        ("16GiB", 16384),
        ("1.5G", 1536),
        ("1T", 1048576),
        ("2048K", 2),
        ("1K", 1),  # rounded up to whole MB
        (" 8 G ", 8192),
    ],
)
def test_parse_memory(text: str, mb: int) -> None:
    assert parse_memory(text) == mb


@pytest.mark.parametrize("text", ["", "G", "16X", "16 GBs", "-1G", "0", "0G", "16b", "1e3"])
def test_parse_memory_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="memory size"):
        parse_memory(text)
