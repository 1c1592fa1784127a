"""Reading with filters and pages, through real HTTP on both backends.

* ``GET /v1/tables/{domain}?base_model=&method=&r=``: the rows are exactly the matching
  (r, method, base model) cells of the unfiltered table, and bold/italic are recomputed over
  what is left (fixed by hand here, and checked against an independent reading of the rule);
* ``GET /v1/checkpoints/{id}/samples``: an offset at or past the end is an empty page with
  the right total; pages put together are the whole list; ``limit`` outside [1, 1000] and a
  negative offset are 422s that name the parameter;
* ``GET /v1/jobs``: ``limit`` (the only paging it has) within [1, 10000].
"""

from __future__ import annotations

import itertools

import httpx
import pytest
from service_support import BACKENDS, TOKEN, real_results, real_samples, results_with, served

from evalsuite.client import ApiClient

# run -> (domain, method, r, base model, [(epoch, final, pass@1 or acc, pass@10)])
RUNS = {
    "lora-8-A": ("code", "lora", 8, "A", [(1, False, 0.40, 0.50), (2, True, 0.35, 0.60)]),
    # same (r, method, base model) as lora-8-A, lower pass@1 BEST: its cell is not shown,
    # so its pass@10 (the best at r=8) is marked nowhere
    "lora-8-A-seed2": ("code", "lora", 8, "A", [(1, True, 0.38, 0.65)]),
    "rslora-8-A": ("code", "rslora", 8, "A", [(1, True, 0.42, 0.52)]),
    "rasa-8-A": ("code", "rasa", 8, "A", [(1, True, 0.45, 0.58)]),
    "lora-16-A": ("code", "lora", 16, "A", [(1, True, 0.36, 0.62)]),
    "rasa-16-A": ("code", "rasa", 16, "A", [(1, True, 0.50, 0.70)]),
    # a base model whose name starts with another's: filters match names exactly
    "lora-8-A-chat": ("code", "lora", 8, "A-chat", [(1, True, 0.90, 0.95)]),
    "lora-8-B": ("code", "lora", 8, "B", [(1, True, 0.20, 0.30)]),
    "rasa-8-B": ("code", "rasa", 8, "B", [(1, True, 0.25, 0.28)]),
    "lora-8-math": ("math", "lora", 8, "A", [(1, True, 0.33, None)]),
}  # fmt: skip
CODE_COLUMNS = ("pass@1_best", "pass@1_last", "pass@10_best", "pass@10_last")
INT64 = 2**63 - 1


def _all(run: str) -> dict[str, list[str]]:
    """The marks of one run in every score column."""
    return {column: [run] for column in CODE_COLUMNS}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    yield from served(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def api(server):
    """Every run of RUNS registered, each checkpoint claimed and completed over HTTP."""
    api = ApiClient(server.url, token=TOKEN)
    for name, (domain, method, r, base, checkpoints) in RUNS.items():
        api.create_run(name=name, method=method, r=r, domain=domain, base_model=base)
        for epoch, final, first, second in checkpoints:
            reg = api.register_checkpoint(
                name, epoch=epoch, step=epoch, uri=f"/c/{name}/{epoch}", sha256=f"{name}{epoch}",
                final=final, suites=[domain],
            )  # fmt: skip
            job = api.claim("w", lease_s=60)
            assert job is not None and job["id"] == reg["jobs"][0]["id"]
            scores = (
                {"humaneval_plus": {"pass@1": first, "pass@10": second}}
                if domain == "code"
                else {"math": {"acc": first}}
            )
            assert api.complete(job["id"], "w", results_with(scores))["status"] == "FINISHED"
    assert api.claim("w", lease_s=60) is None
    return api


def _rows(table: dict) -> dict[tuple, dict[str, str]]:
    """(r, method) -> {base model: the run its cell shows}."""
    return {
        (row["r"], row["method"]): {bm: cell["run"] for bm, cell in row["cells"].items()}
        for row in table["rows"]
    }


def _sorted_marks(table: dict) -> dict:
    return {
        bm: {mark: {key: sorted(runs) for key, runs in keys.items()} for mark, keys in m.items()}
        for bm, m in table["emphasis"].items()
    }


def _marks_by_the_rule(table: dict, columns=CODE_COLUMNS) -> dict:
    """docs/api.md's rule, read independently: bold = every best of a column per base model;
    italic = every best within one r, in ranks with two or more values, unless bold."""
    out = {}
    for bm in table["base_models"]:
        cells = [(row["r"], row["cells"][bm]) for row in table["rows"] if bm in row["cells"]]
        bold: dict[str, list[str]] = {}
        italic: dict[str, list[str]] = {}
        for col in columns:
            present = [(r, c["run"], c[col]) for r, c in cells if c[col] is not None]
            if not present:
                continue
            top = max(v for _, _, v in present)
            bold[col] = sorted(run for _, run, v in present if v == top)
            for r, group in itertools.groupby(sorted(present, key=lambda p: p[0]), lambda p: p[0]):
                group = list(group)
                if len(group) < 2:
                    continue
                best = max(v for _, _, v in group)
                marked = sorted(run for _, run, v in group if v == best and run not in bold[col])
                if marked:
                    italic[f"{r}:{col}"] = marked
        out[bm] = {"bold": bold, "italic": italic}
    return out


def test_unfiltered_code_table(api):
    table = api.table("code")
    assert table["base_models"] == ["A", "A-chat", "B"]
    assert _rows(table) == {
        (8, "lora"): {"A": "lora-8-A", "A-chat": "lora-8-A-chat", "B": "lora-8-B"},
        (8, "rslora"): {"A": "rslora-8-A"},
        (8, "rasa"): {"A": "rasa-8-A", "B": "rasa-8-B"},
        (16, "lora"): {"A": "lora-16-A"},
        (16, "rasa"): {"A": "rasa-16-A"},
    }
    assert [(row["r"], row["method"]) for row in table["rows"]] == list(_rows(table))
    marks = _sorted_marks(table)
    assert marks["A"]["bold"] == {
        "pass@1_best": ["rasa-16-A"],
        "pass@1_last": ["rasa-16-A"],
        "pass@10_best": ["rasa-16-A"],
        "pass@10_last": ["rasa-16-A"],
    }
    assert marks["A"]["italic"] == {
        "8:pass@1_best": ["rasa-8-A"],
        "8:pass@1_last": ["rasa-8-A"],
        "8:pass@10_best": ["lora-8-A"],  # 0.60 of the shown cell; seed2's 0.65 is not shown
        "8:pass@10_last": ["lora-8-A"],
    }
    assert marks == _marks_by_the_rule(table)


def test_filter_by_method_keeps_that_method_only_and_remarks(api):
    table = api.table("code", method="lora")
    assert table["base_models"] == ["A", "A-chat", "B"]
    assert _rows(table) == {
        (8, "lora"): {"A": "lora-8-A", "A-chat": "lora-8-A-chat", "B": "lora-8-B"},
        (16, "lora"): {"A": "lora-16-A"},
    }  # not rslora (an exact match), not the math run (another domain)
    a = table["rows"][0]["cells"]["A"]
    assert (a["pass@1_best"], a["pass@1_last"], a["pass@10_best"], a["pass@10_last"]) == (
        0.40,
        0.35,
        0.60,
        0.60,
    )
    marks = _sorted_marks(table)
    # over LoRA alone: r=8 leads pass@1 BEST, r=16 the other three; one row per rank, no italic
    assert marks["A"] == {
        "bold": {
            "pass@1_best": ["lora-8-A"],
            "pass@1_last": ["lora-16-A"],
            "pass@10_best": ["lora-16-A"],
            "pass@10_last": ["lora-16-A"],
        },
        "italic": {},
    }
    assert marks["B"]["bold"] == _all("lora-8-B")
    assert marks == _marks_by_the_rule(table)
    assert [row["run"] for row in api.table("code", method="rslora")["rows"]] == ["rslora-8-A"]


def test_filter_by_base_model_is_exact_and_keeps_its_marks(api):
    full = api.table("code")
    table = api.table("code", base_model="A")
    assert table["base_models"] == ["A"]  # not A-chat
    assert list(table["emphasis"]) == ["A"]
    assert _rows(table) == {key: {"A": cells["A"]} for key, cells in _rows(full).items()
                            if "A" in cells}  # fmt: skip
    # marks are per base model: the other base models' rows change nothing for A
    assert _sorted_marks(table)["A"] == _sorted_marks(full)["A"]
    b = api.table("code", base_model="B")
    assert _rows(b) == {(8, "lora"): {"B": "lora-8-B"}, (8, "rasa"): {"B": "rasa-8-B"}}
    assert _sorted_marks(b)["B"] == {
        "bold": {
            "pass@1_best": ["rasa-8-B"],
            "pass@1_last": ["rasa-8-B"],
            "pass@10_best": ["lora-8-B"],
            "pass@10_last": ["lora-8-B"],
        },
        "italic": {},  # the best of rank 8 is the bold one
    }
    chat = api.table("code", base_model="A-chat")
    assert _rows(chat) == {(8, "lora"): {"A-chat": "lora-8-A-chat"}}


def test_filter_by_rank_remarks_over_that_rank(api):
    table = api.table("code", r=8)
    assert _rows(table) == {
        (8, "lora"): {"A": "lora-8-A", "A-chat": "lora-8-A-chat", "B": "lora-8-B"},
        (8, "rslora"): {"A": "rslora-8-A"},
        (8, "rasa"): {"A": "rasa-8-A", "B": "rasa-8-B"},
    }
    marks = _sorted_marks(table)
    # without r=16, RaSA r=8 is bold where it was italic; bold is never also italic
    assert marks["A"] == {
        "bold": {
            "pass@1_best": ["rasa-8-A"],
            "pass@1_last": ["rasa-8-A"],
            "pass@10_best": ["lora-8-A"],
            "pass@10_last": ["lora-8-A"],
        },
        "italic": {},
    }
    assert marks == _marks_by_the_rule(table)


def test_filters_combine(api):
    one = api.table("code", base_model="A", method="lora", r=8)
    assert _rows(one) == {(8, "lora"): {"A": "lora-8-A"}}
    assert _sorted_marks(one) == {"A": {"bold": _all("lora-8-A"), "italic": {}}}
    rasa_a = api.table("code", base_model="A", method="rasa")
    assert _rows(rasa_a) == {(8, "rasa"): {"A": "rasa-8-A"}, (16, "rasa"): {"A": "rasa-16-A"}}
    assert _sorted_marks(rasa_a)["A"]["bold"] == _all("rasa-16-A")
    assert _sorted_marks(rasa_a)["A"]["italic"] == {}
    math = api.table("math", method="lora", base_model="A")
    assert _rows(math) == {(8, "lora"): {"A": "lora-8-math"}}
    assert math["rows"][0]["cells"]["A"]["acc_best"] == 0.33
    assert _sorted_marks(math)["A"]["bold"] == {"acc_best": ["lora-8-math"],
                                                "acc_last": ["lora-8-math"]}  # fmt: skip


@pytest.mark.parametrize(
    "filters",
    [
        {"base_model": "nobody"},
        {"base_model": "a"},  # names are case-sensitive
        {"method": "lor"},  # no prefix match
        {"method": "vera"},
        {"r": 0},
        {"r": 32},
        {"base_model": "B", "r": 16},
        {"base_model": "A-chat", "method": "rasa"},
    ],
)
def test_a_filter_that_matches_nothing_is_an_empty_table(api, filters):
    table = api.table("code", **filters)
    assert (table["rows"], table["base_models"], table["emphasis"]) == ([], [], {})
    assert [c["key"] for c in table["columns"]][1:5] == list(CODE_COLUMNS)  # still the layout


def test_every_filter_is_the_unfiltered_table_restricted(api):
    """Over every combination of the seeded values: the same cells, the marks by the rule."""
    full = _rows(api.table("code"))
    for base_model, method, r in itertools.product(
        [None, "A", "A-chat", "B"], [None, "lora", "rslora", "rasa"], [None, 8, 16]
    ):
        table = api.table("code", base_model=base_model, method=method, r=r)
        expected = {}
        for (r_, method_), cells in full.items():
            if (method or method_) != method_ or (r or r_) != r_:
                continue
            kept = {bm: run for bm, run in cells.items() if base_model in (None, bm)}
            if kept:
                expected[(r_, method_)] = kept
        where = (base_model, method, r)
        assert _rows(table) == expected, where
        assert _sorted_marks(table) == _marks_by_the_rule(table), where


def test_a_negative_or_huge_rank_filter_is_a_422(server):
    for r in (-1, 2**31):
        answer = httpx.get(f"{server.url}/v1/tables/code", params={"r": r}, timeout=30)
        assert answer.status_code == 422, answer.text
        assert "query.r" in answer.json()["detail"]


# paging


@pytest.fixture(scope="module")
def checkpoint(api):
    """A checkpoint with the runner's real samples files: 48 tiny_gen rows + 8 tiny_mc."""
    api.create_run(name="paged", method="rasa", r=8, k=1, domain="math", base_model="P")
    reg = api.register_checkpoint("paged", epoch=1, uri="/p", sha256="paged", suites=["tiny"])
    job = api.claim("w", lease_s=60)
    assert job is not None and job["id"] == reg["jobs"][0]["id"]
    api.complete(job["id"], "w", real_results(), real_samples())
    return reg["checkpoint"]["id"]


def _counts() -> dict[str, tuple[int, int]]:
    """task -> (rows, rows judged wrong), read from the files themselves."""
    return {
        task: (len(rows), sum(row["verdict"] is False for row in rows))
        for task, rows in real_samples().items()
    }


def _records(page: dict) -> list[tuple[str, str, int]]:
    return [(s["task"], s["doc_id"], s["sample_index"]) for s in page["items"]]


def test_pages_put_together_are_the_whole_list(api, checkpoint):
    total = sum(n for n, _ in _counts().values())
    whole = api.samples(checkpoint, limit=1000)
    assert whole["total"] == len(whole["items"]) == total == 56
    paged = []
    for offset in range(0, total, 5):
        page = api.samples(checkpoint, limit=5, offset=offset)
        assert page["total"] == total
        assert len(page["items"]) == min(5, total - offset)
        paged += page["items"]
    assert paged == whole["items"]  # same rows, same order, none twice
    assert len(set(_records(whole))) == total
    expected = [row for task in ("tiny_gen", "tiny_mc") for row in real_samples()[task]]
    assert [s["record"] for s in whole["items"]] == expected  # in the order they were written


@pytest.mark.parametrize("past", [0, 1, 44, 10**6, None])
def test_an_offset_at_or_past_the_end_is_an_empty_page_with_the_total(api, checkpoint, past):
    counts = _counts()
    for task, failing, total in [
        (None, False, sum(n for n, _ in counts.values())),
        ("tiny_mc", False, counts["tiny_mc"][0]),
        ("tiny_gen", True, counts["tiny_gen"][1]),
        (None, True, sum(f for _, f in counts.values())),
        ("no-such-task", False, 0),
    ]:
        offset = INT64 if past is None else total + past
        for limit in (1, 100, 1000):
            page = api.samples(checkpoint, task=task, failing=failing, limit=limit, offset=offset)
            assert (page["total"], page["items"]) == (total, []), (task, failing, offset, limit)
        if total:  # the last row is still there, one before the end
            last = api.samples(checkpoint, task=task, failing=failing, offset=total - 1)
            assert last["total"] == total and len(last["items"]) == 1


def _get(server, path: str, **params) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, timeout=30)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": -1}, "query.limit"),
        ({"limit": 1001}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"offset": INT64 + 1}, "query.offset"),
    ],
)
def test_samples_limit_and_offset_out_of_bounds_are_422(server, checkpoint, params, named):
    answer = _get(server, f"/v1/checkpoints/{checkpoint}/samples", **params)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and named in detail
    if params.get("limit") == 1001:
        assert "1000" in detail  # says what the maximum is


def test_samples_limit_bounds_themselves_are_accepted(server, checkpoint):
    one = _get(server, f"/v1/checkpoints/{checkpoint}/samples", limit=1)
    assert one.status_code == 200 and len(one.json()["items"]) == 1
    most = _get(server, f"/v1/checkpoints/{checkpoint}/samples", limit=1000)
    assert most.status_code == 200 and len(most.json()["items"]) == most.json()["total"] == 56
    default = _get(server, f"/v1/checkpoints/{checkpoint}/samples").json()
    assert len(default["items"]) == 56  # under the default limit of 100


def test_paging_an_unknown_checkpoint_is_a_404_not_an_empty_page(server, checkpoint):
    answer = _get(server, f"/v1/checkpoints/{checkpoint + 10_000}/samples", offset=10**6)
    assert answer.status_code == 404, answer.text


def test_job_listing_limit(api, server, checkpoint):
    everything = api.list_jobs(limit=10_000)
    ids = [job["id"] for job in everything]
    assert ids == sorted(ids) and len(ids) == 12  # one job per checkpoint registered here
    for limit in (1, 5, 12, 13, 10_000):
        assert [j["id"] for j in api.list_jobs(limit=limit)] == ids[:limit]
    lora_a = [j["id"] for j in api.list_jobs(run="lora-8-A", limit=1)]
    assert lora_a == [j["id"] for j in everything if j["run"] == "lora-8-A"][:1]
    assert api.list_jobs(status="PENDING") == []
    for bad in (0, -1, 10_001):
        answer = _get(server, "/v1/jobs", limit=bad)
        assert answer.status_code == 422, answer.text
        assert "query.limit" in answer.json()["detail"]
