"""One definition of "comparable scores" for the store's config_hash and the gate."""

from __future__ import annotations

import copy

from service_support import real_results

from evalsuite.comparable import comparability_hash, task_identity


def test_config_hash_ignores_locations_and_sees_settings():
    results = real_results()
    config, model = results["tasks"]["tiny_gen"]["config"], results["model"]
    moved = copy.deepcopy(config)
    moved["source"] = "/elsewhere/tiny_gen.yaml"
    moved["data_origin"] = "/elsewhere/tiny_gen.jsonl"
    moved["description"] = "reworded"
    assert comparability_hash(moved, model) == comparability_hash(config, model)

    hotter = copy.deepcopy(config)
    hotter["sampling"]["temperature"] += 0.1
    other_data = {**config, "data_sha256": "0" * 64}
    other_engine = copy.deepcopy(model)
    other_engine["engine"]["version"] = "0.0.1"
    hashes = {
        comparability_hash(hotter, model),
        comparability_hash(other_data, model),
        comparability_hash(config, other_engine),
        comparability_hash(config, {**model, "materialization": "lora"}),
        comparability_hash(config, model),
    }
    assert len(hashes) == 5
    identity = task_identity(hotter, model)
    assert identity["config.sampling.temperature"] == config["sampling"]["temperature"] + 0.1
    assert "config.source" not in identity


def test_tensor_parallelism_counts_and_the_engine_lifecycle_does_not():
    """tensor_parallel_size > 1 makes other numbers (another reduction order); 1 is what every
    result written before the field existed means, so its hash is the old one. Whether the
    weights were swapped into a running engine is provenance only."""
    results = real_results()
    config, model = results["tasks"]["tiny_gen"]["config"], results["model"]
    without = copy.deepcopy(model)
    without["engine"]["settings"].pop("tensor_parallel_size", None)

    def with_engine(**changes) -> dict:
        changed = copy.deepcopy(without)
        changed["engine"]["settings"].update(changes.pop("settings", {}))
        changed["engine"].update(changes)
        return changed

    legacy = comparability_hash(config, without)
    assert comparability_hash(config, with_engine(settings={"tensor_parallel_size": 1})) == legacy
    assert comparability_hash(config, with_engine(settings={"tensor_parallel_size": 2})) != legacy
    swapped = with_engine(
        lifecycle={
            "how": "swapped",
            "engine_id": "0123456789ab",
            "started": "2026-12-06T05:00:00+00:00",
            "checkpoint_index": 3,
        }
    )
    assert comparability_hash(config, swapped) == legacy
