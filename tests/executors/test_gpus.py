"""GPU discovery and logical-node specs (pure functions; no GPU needed)."""

from __future__ import annotations

import pytest

from axcenter.executors.base import NodeInventory
from axcenter.executors.gpus import (
    local_inventory,
    parse_gpu_name,
    parse_logical_spec,
    parse_nvidia_smi,
)


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("Tesla V100-SXM2-32GB", "V100"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA H100 NVL", "H100"),
        ("NVIDIA A10G", "A10G"),
        ("Tesla T4", "T4"),
        ("NVIDIA GH200 480GB", "GH200"),
        ("NVIDIA GeForce RTX 4090", "GeForce-RTX-4090"),
        ("NVIDIA RTX A6000", "RTX-A6000"),
        ("Quadro RTX 8000", "Quadro-RTX-8000"),
        ("NVIDIA", "GPU"),
    ],
)
def test_parse_gpu_name(name: str, short: str) -> None:
    assert parse_gpu_name(name) == short


def test_parse_logical_spec_two_types() -> None:
    nodes = parse_logical_spec("A100:4,H100:4", cpus=16, memory_mb=1000)
    assert nodes == [
        NodeInventory("local-0", "A100", 4, 16, 1000, logical=True),
        NodeInventory("local-1", "H100", 4, 16, 1000, logical=True),
    ]


def test_parse_logical_spec_node_count() -> None:
    nodes = parse_logical_spec("H100:8x4, A100:2", cpus=4, memory_mb=512)
    assert [(n.name, n.gpu_type, n.gpu_count) for n in nodes] == [
        ("local-0", "H100", 8),
        ("local-1", "H100", 8),
        ("local-2", "H100", 8),
        ("local-3", "H100", 8),
        ("local-4", "A100", 2),
    ]
    assert all(n.logical and n.cpus == 4 and n.memory_mb == 512 for n in nodes)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("H100:x", r"bad GPU spec 'H100:x': expected TYPE:GPUS"),
        ("H100", r"bad GPU spec 'H100'"),
        ("", r"bad GPU spec ''"),
        ("H100:8,", r"bad GPU spec ''"),
        ("H100:0", r"bad GPU spec 'H100:0': GPUs per node must be 1..64"),
        ("H100:65", r"GPUs per node must be 1..64"),
        ("H100:8x0", r"bad GPU spec 'H100:8x0': node count must be 1..1024"),
        ("H100:8x1025", r"node count must be 1..1024"),
        ("-H100:8", r"bad GPU spec '-H100:8': GPU type must match"),
        ("H 100:8", r"GPU type must match"),
        ("A" * 33 + ":8", r"GPU type must match"),
        ("A100:4,H100:-1", r"bad GPU spec 'H100:-1'"),
    ],
)
def test_parse_logical_spec_errors(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_logical_spec(spec, cpus=1, memory_mb=1)


def test_parse_logical_spec_limits_accepted() -> None:
    nodes = parse_logical_spec("g.p_u-1:64x1024", cpus=1, memory_mb=1)
    assert len(nodes) == 1024 and nodes[-1].name == "local-1023"
    assert nodes[0].gpu_type == "g.p_u-1" and nodes[0].gpu_count == 64


def test_parse_nvidia_smi_one_model() -> None:
    out = "0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA H100 80GB HBM3, 81559\n"
    assert parse_nvidia_smi(out, "gpu01", cpus=96, memory_mb=2_000_000) == [
        NodeInventory("gpu01", "H100", 2, 96, 2_000_000, logical=False)
    ]


def test_parse_nvidia_smi_mixed_models_keeps_real_indices(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = "\n".join(
        [
            "0, NVIDIA RTX A4000, 16376",
            "1, NVIDIA A100-SXM4-80GB, 81920",
            "2, NVIDIA A100-SXM4-80GB, 81920",
        ]
    )
    (node,) = parse_nvidia_smi(out, "ws", cpus=8, memory_mb=100)
    assert (node.gpu_type, node.gpu_count, node.device_ids) == ("A100", 2, (1, 2))
    assert node.real_device(0) == 1
    assert "mixed GPU models" in caplog.text


def test_parse_nvidia_smi_empty_and_garbage() -> None:
    assert parse_nvidia_smi("\n", "h", 1, 1) == []
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi("No devices were found", "h", 1, 1)


def test_local_inventory_with_spec_is_logical() -> None:
    nodes = local_inventory("A100:2x2", cpus=4, memory_mb=100)
    assert [n.name for n in nodes] == ["local-0", "local-1"]
    assert all(n.logical for n in nodes)


def test_local_inventory_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: logical default
    nodes = local_inventory(None)
    assert [(n.name, n.gpu_type, n.gpu_count, n.logical) for n in nodes] == [
        ("local-0", "H100", 8, True)
    ]
    assert nodes[0].cpus >= 1 and nodes[0].memory_mb > 0
