"""The whole flow through real HTTP: runs, checkpoints, claim, complete, then BEST/LAST,
the paper's tables and curves with numbers fixed here by hand; partial scores excluded."""

from __future__ import annotations

import pytest
from service_support import (
    BACKENDS,
    TOKEN,
    real_results,
    real_samples,
    results_with,
    sample_row,
    served,
)

from evalsuite.client import ApiClient, ApiError

# run -> (method, r, base model, [(epoch, final, partial, pass@1, pass@10, forgetting)])
RUNS = {
    "lora-r8": ("lora", 8, "A", [(1, False, False, 0.30, 0.50, 0.60),
                                 (2, False, False, 0.40, 0.55, 0.58),
                                 (3, True, False, 0.35, 0.60, 0.57)]),
    "rasa-r8": ("rasa", 8, "A", [(1, False, False, 0.45, 0.52, 0.61),
                                 (2, False, False, 0.45, 0.58, 0.62),
                                 (3, False, True, 0.99, 0.99, 0.99)]),
    "lora-r16": ("lora", 16, "A", [(1, True, False, 0.50, 0.70, 0.55)]),
    "rasa-r8-b": ("rasa", 8, "B", [(1, True, False, 0.20, 0.30, 0.40)]),
}  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    yield from served(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def filled(server):
    """Every checkpoint of RUNS registered, claimed and completed by one worker."""
    api = ApiClient(server.url, token=TOKEN)
    for name, (method, r, base, checkpoints) in RUNS.items():
        api.create_run(
            name=name, method=method, r=r, k=2 if method == "rasa" else None, domain="code",
            base_model=base, trainable_params=1000 * r, train_time_s=60.0 * r,
        )  # fmt: skip
        for epoch, final, partial, p1, p10, forgetting in checkpoints:
            reg = api.register_checkpoint(
                name, epoch=epoch, step=10 * epoch, uri=f"/ckpt/{name}/{epoch}",
                sha256=f"{name}-{epoch}", final=final, suites=["code"],
            )  # fmt: skip
            job = api.claim("worker-1", lease_s=60)
            assert job["id"] == reg["jobs"][0]["id"]
            results = results_with(
                {"humaneval_plus": {"pass@1": p1, "pass@10": p10}},
                partial=partial,
                aggregates={"forgetting_score": forgetting},
            )
            samples = {
                "humaneval_plus": [
                    sample_row("HumanEval/0", 0, True),
                    sample_row("HumanEval/0", 1, False),
                    sample_row("HumanEval/1", 0, False),
                ]
            }
            assert api.complete(job["id"], "worker-1", results, samples)["status"] == "FINISHED"
    assert api.claim("worker-1") is None
    return api


def test_leaderboard_best_and_last(filled):
    rows = filled.leaderboard("humaneval_plus", "pass@1")
    got = [(r["run"], r["best"], r["best_epoch"], r["last"], r["last_epoch"], r["n_epochs"])
           for r in rows]  # fmt: skip
    assert got == [
        ("lora-r16", 0.50, 1, 0.50, 1, 1),
        ("rasa-r8", 0.45, 1, 0.45, 2, 2),  # tie: the earlier epoch; partial epoch 3 ignored
        ("lora-r8", 0.40, 2, 0.35, 3, 3),
        ("rasa-r8-b", 0.20, 1, 0.20, 1, 1),
    ]
    only_b = filled.leaderboard("humaneval_plus", "pass@10", base_model="B")
    assert [(r["run"], r["best"]) for r in only_b] == [("rasa-r8-b", 0.30)]
    assert filled.leaderboard("humaneval_plus", "pass@1", domain="math") == []


def test_table_1_layout_and_marks(filled):
    table = filled.table("code")
    assert table["base_models"] == ["A", "B"]
    assert [(r["r"], r["method"]) for r in table["rows"]] == [
        (8, "lora"),
        (8, "rasa"),
        (16, "lora"),
    ]
    rasa = table["rows"][1]["cells"]
    assert rasa["A"] == {
        "run": "rasa-r8", "train_time_s": 480.0, "trainable_params": 8000, "extra_params": None,
        "pass@1_best": 0.45, "pass@1_last": 0.45, "pass@10_best": 0.58, "pass@10_last": 0.58,
        # the stored stderr of each BEST / LAST score (the seeded results carry 0.01)
        "pass@1_best_stderr": 0.01, "pass@1_last_stderr": 0.01,
        "pass@10_best_stderr": 0.01, "pass@10_last_stderr": 0.01,
    }  # fmt: skip
    assert rasa["B"]["pass@1_best"] == 0.20
    assert table["rows"][0]["cells"]["A"]["pass@1_last"] == 0.35
    marks = table["emphasis"]["A"]
    assert marks["bold"]["pass@1_best"] == ["lora-r16"]
    assert marks["bold"]["pass@10_best"] == ["lora-r16"]
    assert marks["italic"]["8:pass@1_best"] == ["rasa-r8"]
    assert marks["italic"]["8:pass@10_best"] == ["lora-r8"]  # 0.60 beats RaSA's 0.58
    assert marks["italic"]["8:pass@1_last"] == ["rasa-r8"]
    assert "16:pass@1_best" not in marks["italic"]  # a rank of one row: bold only
    assert table["emphasis"]["B"]["bold"]["pass@1_best"] == ["rasa-r8-b"]
    assert [c["key"] for c in table["columns"]][:3] == [
        "train_time_s",
        "pass@1_best",
        "pass@1_last",
    ]
    only_r16 = filled.table("code", r=16)
    assert [row["run"] for row in only_r16["rows"]] == ["lora-r16"]
    assert filled.table("math")["rows"] == []


def test_curves_and_forgetting(filled):
    curves = filled.curves(["lora-r8", "rasa-r8", "nobody"], "humaneval_plus", "pass@1")
    assert [c["run"] for c in curves] == ["lora-r8", "rasa-r8", "nobody"]
    assert [(p["epoch"], p["value"]) for p in curves[0]["points"]] == [
        (1, 0.30),
        (2, 0.40),
        (3, 0.35),
    ]
    assert curves[0]["best_epoch"] == 2
    assert [(p["epoch"], p["value"]) for p in curves[1]["points"]] == [(1, 0.45), (2, 0.45)]
    assert curves[2] == {"run": "nobody", "best_epoch": None, "points": []}
    forgetting = filled.curves(["rasa-r8"], "forgetting", "forgetting_score")[0]
    assert [p["value"] for p in forgetting["points"]] == [0.61, 0.62]


def test_checkpoint_scores_and_samples(filled):
    run = filled.get_run("rasa-r8")
    assert [c["epoch"] for c in run["checkpoints"]] == [1, 2, 3]
    partial = filled.get_checkpoint(run["checkpoints"][2]["id"])
    assert {(s["task"], s["metric"], s["partial"]) for s in partial["scores"]} == {
        ("humaneval_plus", "pass@1", True),
        ("humaneval_plus", "pass@10", True),
        ("forgetting", "forgetting_score", True),
    }
    first = run["checkpoints"][0]["id"]
    page = filled.samples(first)
    assert page["total"] == 3
    failing = filled.samples(first, task="humaneval_plus", failing=True)
    assert failing["total"] == 2
    assert [(s["doc_id"], s["sample_index"]) for s in failing["items"]] == [
        ("HumanEval/0", 1),
        ("HumanEval/1", 0),
    ]
    assert filled.samples(first, limit=1, offset=2)["items"][0]["record"]["doc_id"] == "HumanEval/1"


def test_real_runner_results_are_stored_as_written(server):
    """The example RaSA checkpoint's results.json and samples, as 'evalsuite eval' wrote them."""
    api = ApiClient(server.url, token=TOKEN)
    api.create_run(name="tiny-rasa", method="rasa", r=8, k=1, domain="math", base_model="tiny")
    reg = api.register_checkpoint(
        "tiny-rasa", epoch=3.0, step=30, uri="/x", sha256="ffed89", final=True, suites=["tiny"]
    )
    job = api.claim("w", 60)
    api.complete(job["id"], "w", real_results(), real_samples())
    again = api.complete(job["id"], "w", real_results(), real_samples())
    assert again["status"] == "FINISHED"
    detail = api.get_checkpoint(reg["checkpoint"]["id"])
    got = {(s["task"], s["metric"]): (s["value"], s["stderr"], s["n"]) for s in detail["scores"]}
    assert got == {
        ("tiny_gen", "exact_match"): (0.0, 0.0, 48),
        ("tiny_mc", "acc"): (0.125, 0.125, 8),
        ("tiny_mc", "acc_norm"): (0.5, 0.1889822365046136, 8),
    }
    score = detail["scores"][0]
    assert (score["materialization"], score["dtype"], score["engine"]) == (
        "merged",
        "float32",
        "hf",
    )
    assert len(score["config_hash"]) == 64
    page = api.samples(reg["checkpoint"]["id"], task="tiny_mc", limit=1000)
    # one copy despite two completions; correct = the verdict of the samples file
    expected = real_samples()["tiny_mc"]
    assert page["total"] == len(expected) == 8
    assert [s["correct"] for s in page["items"]] == [row["verdict"] for row in expected]
    assert page["items"][3]["record"] == expected[3]
    assert api.samples(reg["checkpoint"]["id"], task="tiny_gen")["total"] == 48


def test_registration_is_idempotent_and_conflicts_are_409(server):
    api = ApiClient(server.url, token=TOKEN)
    fields = dict(name="m1", method="lora", r=8, domain="math", base_model="A", alpha=16.0)
    first = api.create_run(**fields)
    assert api.create_run(**fields)["id"] == first["id"]
    with pytest.raises(ApiError) as exc:
        api.create_run(**{**fields, "r": 16})
    assert exc.value.status == 409 and "r" in str(exc.value)
    reg = api.register_checkpoint("m1", epoch=1, step=1, uri="/u", sha256="s1")
    assert sorted(j["suite"] for j in reg["jobs"]) == ["forgetting", "math"]
    again = api.register_checkpoint("m1", epoch=1, step=1, uri="/u", sha256="s1")
    assert again["checkpoint"]["id"] == reg["checkpoint"]["id"]
    assert [j["id"] for j in again["jobs"]] == [j["id"] for j in reg["jobs"]]
    assert len(api.list_jobs(run="m1")) == 2
    with pytest.raises(ApiError) as exc:
        api.register_checkpoint("no-such-run", epoch=1, uri="/u", sha256="s")
    assert exc.value.status == 404 and "POST /v1/runs" in str(exc.value)
    while job := api.claim("w", 60):  # leave the queue empty for the next test
        api.complete(job["id"], "w", results_with({"math": {"acc": 0.1}}))


def test_writes_need_a_token_and_errors_are_json(server):
    import httpx

    anonymous = httpx.post(f"{server.url}/v1/runs", json={"name": "x"})
    assert anonymous.status_code == 401
    assert "Bearer" in anonymous.json()["detail"]
    wrong = httpx.post(
        f"{server.url}/v1/jobs/claim",
        json={"worker_id": "w"},
        headers={"Authorization": "Bearer nope"},
    )
    assert wrong.status_code == 401
    assert httpx.get(f"{server.url}/v1/runs").status_code == 200  # reads are open
    bad = httpx.post(
        f"{server.url}/v1/runs",
        json={"name": "x", "method": "lora", "domain": "physics", "base_model": "A"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert bad.status_code == 422
    assert isinstance(bad.json()["detail"], str) and "domain" in bad.json()["detail"]
    api = ApiClient(server.url, token=TOKEN)
    api.create_run(name="m2", method="lora", r=8, domain="math", base_model="A")
    job = api.register_checkpoint("m2", epoch=2, uri="/u", sha256="s2", suites=["math"])["jobs"][0]
    claimed = api.claim("w", 60)
    assert claimed["id"] == job["id"]
    with pytest.raises(ApiError) as exc:
        api.complete(job["id"], "w", {"tasks": {"math": {"metrics": {"acc": "high"}}}})
    assert exc.value.status == 422 and "results.tasks.math.metrics.acc" in str(exc.value)
    # nothing was stored by the refused completion; the job can still complete
    assert api.get_job(job["id"])["status"] == "RUNNING"
    assert (
        api.complete(job["id"], "w", results_with({"math": {"acc": 0.5}}))["status"] == "FINISHED"
    )


def test_ties_are_all_marked_by_the_api_and_the_dashboard(tmp_path):
    """Two methods tie for the best at r=8: both bold, neither also italic; at r=16 the
    best of the rank is italic for both tied rows (the paper marks every tied best)."""
    from evalsuite.dashboard.table import from_table_data, with_emphasis

    runs = {"lora-8": ("lora", 8, 0.5), "rasa-8": ("rasa", 8, 0.5),
            "lora-16": ("lora", 16, 0.3), "dora-16": ("dora", 16, 0.3),
            "vera-16": ("vera", 16, 0.1)}  # fmt: skip
    for server in served("sqlite", tmp_path):
        api = ApiClient(server.url, token=TOKEN)
        for name, (method, r, value) in runs.items():
            api.create_run(name=name, method=method, r=r, domain="code", base_model="A")
            reg = api.register_checkpoint(
                name, epoch=1, step=1, uri=f"/c/{name}", sha256=name, final=True, suites=["code"]
            )
            job = api.claim("w", lease_s=60)
            assert job["id"] == reg["jobs"][0]["id"]
            scores = {"humaneval_plus": {"pass@1": value, "pass@10": value}}
            api.complete(job["id"], "w", results_with(scores), {})
        data = api.table("code")
    marks = data["emphasis"]["A"]
    assert sorted(marks["bold"]["pass@1_best"]) == ["lora-8", "rasa-8"]
    assert sorted(marks["italic"]["16:pass@1_best"]) == ["dora-16", "lora-16"]
    assert "8:pass@1_best" not in marks["italic"]
    view = with_emphasis(from_table_data(data))
    shown = {
        (view.rows[i].cells["A"]["run"], mark)
        for (i, _, key), mark in view.emphasis.items()
        if key == "pass@1_best"
    }
    assert shown == {("lora-8", "bold"), ("rasa-8", "bold"), ("lora-16", "italic"),
                     ("dora-16", "italic")}  # fmt: skip
