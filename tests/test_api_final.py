"""POST /v1/checkpoints/{id}/final over real HTTP on SQLite and PostgreSQL: a checkpoint
registered without ``final`` becomes its run's LAST, the mark moves (one final per run), a
repeat is a no-op, and what LAST means is read back through the leaderboard."""

from __future__ import annotations

import httpx
import pytest
from service_support import BACKENDS, TOKEN, results_with, served

from evalsuite.base_epoch import BASE_URI
from evalsuite.client import ApiClient, ApiError

# epoch -> pass@1, chosen so that LAST = the highest epoch differs from LAST = the one marked
SCORES = {1: 0.30, 2: 0.50, 3: 0.40}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    yield from served(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def run(server) -> dict[int, int]:
    """Run ``r`` with epochs 1-3 registered (none final) and scored, and its base as epoch 0;
    epoch -> checkpoint id."""
    api = ApiClient(server.url, token=TOKEN)
    api.create_run(name="r", method="lora", r=8, domain="code", base_model="B")
    ids = {}
    for epoch, value in SCORES.items():
        reg = api.register_checkpoint(
            "r", epoch=epoch, step=5 * epoch, uri=f"/c/{epoch}", sha256=f"s{epoch}",
            suites=["code"],
        )  # fmt: skip
        ids[epoch] = reg["checkpoint"]["id"]
        job = api.claim("w")
        api.complete(job["id"], "w", results_with({"humaneval_plus": {"pass@1": value}}))
    base = api.register_checkpoint("r", epoch=0, uri=BASE_URI, sha256="base", suites=["code"])
    ids[0] = base["checkpoint"]["id"]
    return ids


def _last(api: ApiClient) -> tuple[float, float]:
    (row,) = api.leaderboard("humaneval_plus", "pass@1")
    return row["last_epoch"], row["last"]


def _finals(api: ApiClient) -> list[float]:
    return [c["epoch"] for c in api.get_run("r")["checkpoints"] if c["final"]]


def test_marking_final_moves_last(server, run):
    api = ApiClient(server.url, token=TOKEN)
    assert _finals(api) == []
    assert _last(api) == (3, SCORES[3])  # no mark: the highest epoch

    # registering epoch 2 again with final=true is deduped by sha256 and changes nothing
    again = api.register_checkpoint("r", epoch=2, uri="/c/2", sha256="s2", final=True)
    assert again["checkpoint"]["final"] is False and again["jobs"][0]["status"] == "FINISHED"
    assert _last(api) == (3, SCORES[3])

    marked = api.mark_final(run[2])
    assert (marked["id"], marked["epoch"], marked["final"]) == (run[2], 2, True)
    assert _finals(api) == [2]
    assert _last(api) == (2, SCORES[2])

    assert api.mark_final(run[2]) == marked  # idempotent
    assert _finals(api) == [2]

    api.mark_final(run[1])  # the mark moves: one final checkpoint per run
    assert _finals(api) == [1]
    assert _last(api) == (1, SCORES[1])


def test_refusals(server, run):
    api = ApiClient(server.url, token=TOKEN)
    before = _finals(api)
    with pytest.raises(ApiError) as e:
        api.mark_final(run[0])
    assert e.value.status == 409 and "epoch 0" in e.value.detail
    with pytest.raises(ApiError) as e:
        api.mark_final(999_999)
    assert e.value.status == 404
    anonymous = httpx.post(f"{server.url}/v1/checkpoints/{run[3]}/final")
    assert anonymous.status_code == 401
    assert _finals(api) == before
