"""Tuning records serve the same layer at other batch sizes, and nothing else."""

import dataclasses
import json

import numpy as np
import pytest

import clconv
from clconv import cache_files, tuning_cache
from clconv.algorithms.tiled import CorrelationConfig

# A 3x3 layer with padding 1, at batch sizes given by the tests.
INPUT, WEIGHT = (5, 9, 9), (6, 5, 3, 3)
TILE = CorrelationConfig(vec=8, block_k=2, block_v=3, local=(1, 1, 1))
# As read back from the file, where the work-group tuple is a list.
TILED = json.loads(json.dumps({"algo": "tiled", "config": dataclasses.asdict(TILE), "gflops": 1.0}))
DIRECT = {"algo": "direct", "config": None, "gflops": 1.0}


@pytest.fixture(autouse=True)
def tuning_file(tmp_path, monkeypatch):
    monkeypatch.setenv(cache_files.TUNING_ENV_VAR, str(tmp_path / "tuning.json"))


def layer(batch: int, **changes) -> clconv.Conv2DParams:
    params = clconv.Conv2DParams.create((batch, *INPUT), WEIGHT, padding=1)
    return dataclasses.replace(params, **changes)


def forward_choice(device, batch: int):
    return clconv.plan((batch, *INPUT), WEIGHT, padding=1, device=device.device).choices["forward"]


@pytest.mark.parametrize("batch", [31, 64])
def test_record_serves_the_same_layer_at_another_batch(device, batch):
    tuning_cache.store(device, layer(32), "forward", TILED)
    choice = forward_choice(device, batch)
    assert (choice.algo, choice.config, choice.source) == ("tiled", TILE, "tuned at batch 32")
    assert forward_choice(device, 32).source == "tuned"


def test_exact_batch_wins_over_a_near_one(device):
    tuning_cache.store(device, layer(32), "forward", TILED)
    tuning_cache.store(device, layer(31), "forward", DIRECT)
    choice = forward_choice(device, 31)
    assert (choice.algo, choice.source) == ("direct", "tuned")


def test_nearest_batch_is_by_ratio_and_the_smaller_on_a_tie(device):
    tuning_cache.store(device, layer(16), "forward", DIRECT)
    tuning_cache.store(device, layer(64), "forward", TILED)
    assert tuning_cache.lookup(device, layer(40), "forward") == (TILED, 64)  # 64/40 = 1.6 against 40/16 = 2.5
    assert tuning_cache.lookup(device, layer(28), "forward") == (DIRECT, 16)  # 28/16 = 1.75 against 64/28 = 2.3
    assert tuning_cache.lookup(device, layer(32), "forward") == (DIRECT, 16)  # both twice as far


def test_record_of_another_pass_layer_or_device_is_not_used(device):
    tuning_cache.store(device, layer(32), "forward", TILED)
    assert tuning_cache.lookup(device, layer(32), "grad_input") is None
    for other in (layer(32, C=10, K=6), layer(32, stride=(2, 2)), layer(32, padding=(0, 0, 0, 0)),
                  layer(32, dtype=np.dtype(np.float64))):
        assert tuning_cache.lookup(device, dataclasses.replace(other, N=31), "forward") is None, other
    other_driver = dataclasses.replace(device, driver_version=device.driver_version + "-other")
    other_device = dataclasses.replace(device, name=device.name + " (another)")
    assert tuning_cache.lookup(other_driver, layer(31), "forward") is None
    assert tuning_cache.lookup(other_device, layer(31), "forward") is None
    assert forward_choice(device, 31).source == "tuned at batch 32"


def test_records_of_an_older_format_are_ignored(device):
    """Version 1 named the correlation tile's vectors per channel block_p; its records are not read."""
    path = tuning_cache.store(device, layer(32), "forward", TILED)
    document = json.loads(path.read_text())
    assert document["version"] == 2
    document["version"] = 1
    path.write_text(json.dumps(document))
    assert forward_choice(device, 32).source == "heuristic"
