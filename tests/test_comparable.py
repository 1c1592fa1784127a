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
