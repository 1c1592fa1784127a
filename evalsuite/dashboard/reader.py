"""The dashboard's only way to the data: the results service's read endpoints (plus retry).

Failures become two exceptions the pages turn into banners: ``ApiUnreachable`` (nothing
answers at the URL: start the API or fix the URL) and ``ApiError`` (it answered 4xx/5xx; the
service's ``detail`` says what was wrong). Nothing here imports Streamlit.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"


class ApiUnreachable(Exception):
    """No HTTP answer at the configured URL (connection refused, DNS, timeout)."""


class ApiError(Exception):
    """The service answered with an error; ``detail`` is its message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def api_url_from_env() -> str:
    """``EVALSUITE_API_URL`` or the API's default local address."""
    return os.environ.get("EVALSUITE_API_URL") or DEFAULT_API_URL


class Reader:
    """A small synchronous client; one ``httpx.Client`` per reader, closed with it."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.TransportError, httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            raise ApiUnreachable(f"no answer from {self.base_url}{path}: {e}") from e
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, str(detail))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @staticmethod
    def _params(**kwargs: Any) -> dict[str, Any]:
        return {k: v for k, v in kwargs.items() if v is not None}

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/v1/health")

    def runs(self, domain: str | None = None) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/runs", params=self._params(domain=domain))

    def run(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/runs/{name}")

    def table(self, domain: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/tables/{domain}")

    def curves(self, runs: list[str], task: str, metric: str) -> list[dict[str, Any]]:
        params = {"runs": ",".join(runs), "task": task, "metric": metric}
        return self._request("GET", "/v1/curves", params=params)

    def checkpoint(self, checkpoint_id: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/checkpoints/{checkpoint_id}")

    def samples(
        self,
        checkpoint_id: int,
        task: str | None = None,
        failing: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        params = self._params(
            task=task, failing="true" if failing else None, limit=limit, offset=offset
        )
        return self._request("GET", f"/v1/checkpoints/{checkpoint_id}/samples", params=params)

    def jobs(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/jobs", params=self._params(status=status, limit=limit))

    def retry(self, job_id: int) -> dict[str, Any]:
        return self._request("POST", f"/v1/jobs/{job_id}/retry")
