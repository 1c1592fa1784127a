"""A small typed client of the results service (docs/api.md), one method per endpoint.

Used by the worker, the dashboard and the gate; it imports only httpx, so slim images can
use it. Every failure raises :class:`ApiError` naming the URL, the status and the server's
explanation (or how to reach the server when it cannot be reached).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from evalsuite.errors import EvalsuiteError

JSON = dict[str, Any]


class ApiError(EvalsuiteError):
    """A request to the results service failed; ``status`` is None when nothing answered."""

    def __init__(
        self, message: str, status: int | None = None, url: str = "", detail: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.detail = detail or message  # the server's own explanation, when it gave one


class ApiClient:
    """``ApiClient("http://host:8000", token=...)``; methods return the decoded JSON."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _request(self, method: str, path: str, json: Any = None, params: JSON | None = None) -> Any:
        full = f"{self.url}{path}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=query)
        except httpx.TimeoutException:
            raise ApiError(
                f"{method} {full} timed out; is the service overloaded? raise the client's "
                "timeout or check the server's log",
                url=full,
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the evalsuite API at {self.url} ({exc.__class__.__name__}: "
                f"{exc}); start it with 'evalsuite api' or fix the URL",
                url=full,
            ) from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except (ValueError, AttributeError):
                detail = response.text[:500]
            hint = (
                " (set the token: ApiClient(url, token=...))" if response.status_code == 401 else ""
            )
            raise ApiError(
                f"{method} {full} -> {response.status_code}: {detail}{hint}",
                status=response.status_code,
                url=full,
                detail=str(detail),
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # runs and checkpoints
    def create_run(self, **fields: Any) -> JSON:
        """POST /v1/runs with ``RunIn`` fields (name, method, r, k, domain, base_model, ...)."""
        return self._request("POST", "/v1/runs", json=fields)

    def list_runs(
        self, domain: str | None = None, base_model: str | None = None, method: str | None = None
    ) -> list[JSON]:
        params = {"domain": domain, "base_model": base_model, "method": method}
        return self._request("GET", "/v1/runs", params=params)

    def get_run(self, name: str) -> JSON:
        return self._request("GET", f"/v1/runs/{_segment(name)}")

    def register_checkpoint(self, run: str, **fields: Any) -> JSON:
        """POST /v1/runs/{run}/checkpoints (epoch, step, uri, sha256, final, suites)."""
        return self._request("POST", f"/v1/runs/{_segment(run)}/checkpoints", json=fields)

    def get_checkpoint(self, checkpoint_id: int) -> JSON:
        return self._request("GET", f"/v1/checkpoints/{checkpoint_id}")

    def mark_final(self, checkpoint_id: int) -> JSON:
        """POST /v1/checkpoints/{id}/final: this checkpoint is its run's LAST (idempotent)."""
        return self._request("POST", f"/v1/checkpoints/{checkpoint_id}/final")

    def samples(
        self,
        checkpoint_id: int,
        task: str | None = None,
        failing: bool = False,
        limit: int = 100,
        offset: int = 0,
        doc_id: str | None = None,
    ) -> JSON:
        params = {
            "task": task,
            "failing": failing or None,
            "limit": limit,
            "offset": offset,
            "doc_id": doc_id,
        }
        return self._request("GET", f"/v1/checkpoints/{checkpoint_id}/samples", params=params)

    def compare(
        self, a: str, b: str, task: str | None = None, n_boot: int = 10_000, seed: int = 0
    ) -> JSON:
        """GET /v1/compare: the documents that flipped between two checkpoints (ids or
        RUN@sel) and b - a with the gate's interval."""
        params = {"a": a, "b": b, "task": task, "n_boot": n_boot, "seed": seed}
        return self._request("GET", "/v1/compare", params=params)

    # the queue
    def list_jobs(
        self, status: str | None = None, run: str | None = None, limit: int = 100
    ) -> list[JSON]:
        return self._request(
            "GET", "/v1/jobs", params={"status": status, "run": run, "limit": limit}
        )

    def get_job(self, job_id: int) -> JSON:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def claim(self, worker_id: str, lease_s: float = 600.0) -> JSON | None:
        """A ``JobClaim``, or None when nothing is pending."""
        body = {"worker_id": worker_id, "lease_s": lease_s}
        return self._request("POST", "/v1/jobs/claim", json=body)

    def heartbeat(self, job_id: int, worker_id: str, lease_s: float = 600.0) -> JSON:
        """Extend the lease; ApiError with status 409 when the lease is no longer ours."""
        body = {"worker_id": worker_id, "lease_s": lease_s}
        return self._request("POST", f"/v1/jobs/{job_id}/heartbeat", json=body)

    def complete(
        self,
        job_id: int,
        worker_id: str,
        results: JSON,
        samples: dict[str, list[JSON]] | None = None,
    ) -> JSON:
        """Report ``results.json`` and the samples rows per task; safe to repeat."""
        body = {"worker_id": worker_id, "results": results, "samples": samples or {}}
        return self._request("POST", f"/v1/jobs/{job_id}/complete", json=body)

    def fail(self, job_id: int, worker_id: str, error: str) -> JSON:
        body = {"worker_id": worker_id, "error": error}
        return self._request("POST", f"/v1/jobs/{job_id}/fail", json=body)

    def release(self, job_id: int, worker_id: str) -> JSON:
        """Hand a held job back to the queue untried (the worker is shutting down)."""
        return self._request("POST", f"/v1/jobs/{job_id}/release", json={"worker_id": worker_id})

    def retry(self, job_id: int) -> JSON:
        return self._request("POST", f"/v1/jobs/{job_id}/retry")

    # reading results
    def leaderboard(
        self,
        task: str,
        metric: str,
        domain: str | None = None,
        base_model: str | None = None,
    ) -> list[JSON]:
        params = {"task": task, "metric": metric, "domain": domain, "base_model": base_model}
        return self._request("GET", "/v1/leaderboard", params=params)

    def table(
        self,
        domain: str,
        base_model: str | None = None,
        method: str | None = None,
        r: int | None = None,
    ) -> JSON:
        params = {"base_model": base_model, "method": method, "r": r}
        return self._request("GET", f"/v1/tables/{domain}", params=params)

    def curves(self, runs: list[str], task: str, metric: str) -> list[JSON]:
        params = {"runs": ",".join(runs), "task": task, "metric": metric}
        return self._request("GET", "/v1/curves", params=params)

    def health(self) -> JSON:
        return self._request("GET", "/v1/health")


def _segment(value: str) -> str:
    """A run name as one path segment ('?', '#' and the like escaped)."""
    return quote(value, safe="")
