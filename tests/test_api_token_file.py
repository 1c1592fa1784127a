"""``EVALSUITE_API_TOKEN_FILE``: several tokens, one per line, through ``evalsuite api``.

The format (evalsuite/settings.py, docs/api.md): one token per line, surrounding
whitespace (and a CRLF line end) stripped, blank lines and ``#`` comment lines skipped (a
comment is never a token). Every token is accepted and the file's tokens add to
``EVALSUITE_API_TOKEN``. A file that cannot be read stops
``evalsuite api`` before it serves anything, with one line that names the variable and the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_support import TOKEN, free_port, make_database

from evalsuite.store import migrate

FILE_TOKENS = ("alpha-0123", "beta-4567", "gamma-89ab")


def _write_file(path: Path) -> Path:
    # leading/trailing blanks, a CRLF line end and blank lines, as hand-edited files have
    path.write_bytes(
        b"# tokens of the CI runners\n  alpha-0123  \n\n   \t \n  # beta is the nightly\n"
        b"beta-4567\r\ngamma-89ab"  # no final newline
    )
    return path


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    url, drop = make_database("sqlite", tmp_path_factory.mktemp("token-file"))
    migrate.upgrade(url)
    yield url
    drop()


def _evalsuite() -> list[str]:
    exe = Path(sys.executable).with_name("evalsuite")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "evalsuite.cli"]


def _serve(database: str, log: Path, **env: str):
    """``evalsuite api`` as a user starts it, on a free port; its URL once it answers."""
    port = free_port()
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*_evalsuite(), "api", "--port", str(port)],
            env={**os.environ, "EVALSUITE_DATABASE_URL": database, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # only ends a test whose server never comes up
        while True:
            assert process.poll() is None, f"'evalsuite api' exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"no answer from {url}: {log.read_text()}"
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def file_only(database, tmp_path_factory):
    """A server whose only tokens are the file's (``EVALSUITE_API_TOKEN`` empty)."""
    root = tmp_path_factory.mktemp("tokens")
    token_file = _write_file(root / "tokens")
    yield from _serve(
        database,
        root / "api.log",
        EVALSUITE_API_TOKEN="",
        EVALSUITE_API_TOKEN_FILE=str(token_file),
    )


def _create_run(url: str, name: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = {"name": name, "method": "lora", "r": 8, "domain": "code", "base_model": "A"}
    return httpx.post(f"{url}/v1/runs", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("token", FILE_TOKENS)
def test_every_token_in_the_file_can_write(file_only, token):
    answer = _create_run(file_only, f"by-{token}", token)
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == f"by-{token}"
    stored = httpx.get(f"{file_only}/v1/runs/by-{token}", timeout=30)
    assert stored.status_code == 200 and stored.json()["method"] == "lora"


REFUSED = {
    "env-token": TOKEN,  # the usual test token: not in this file, and the env token is empty
    "prefix": "alpha-012",  # a prefix of a file token
    "longer": "alpha-01234",  # a file token with more after it
    "case": "ALPHA-0123",  # tokens are case-sensitive
    "two-lines": "alpha-0123 beta-4567",  # two lines of the file joined
    "comment": "# tokens of the CI runners",  # a comment line of the file
    "indented-comment": "# beta is the nightly",
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_token_not_in_the_file_is_a_401_and_writes_nothing(file_only, case):
    answer = _create_run(file_only, f"refused-{case}", REFUSED[case])
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "not accepted" in answer.json()["detail"]
    assert httpx.get(f"{file_only}/v1/runs/refused-{case}", timeout=30).status_code == 404


def test_the_file_adds_to_the_environment_token(database, tmp_path):
    token_file = _write_file(tmp_path / "tokens")
    env = {"EVALSUITE_API_TOKEN": TOKEN, "EVALSUITE_API_TOKEN_FILE": str(token_file)}
    for url in _serve(database, tmp_path / "api.log", **env):
        for i, token in enumerate((TOKEN, *FILE_TOKENS)):
            assert _create_run(url, f"both-{i}", token).status_code == 201
        assert _create_run(url, "both-x", "not-a-token").status_code == 401


def test_a_file_without_tokens_leaves_writes_refused(database, tmp_path):
    """An empty file configures no token: the API fails closed and says how to configure one."""
    token_file = tmp_path / "empty"
    token_file.write_text("\n  \n\n")
    env = {"EVALSUITE_API_TOKEN": "", "EVALSUITE_API_TOKEN_FILE": str(token_file)}
    for url in _serve(database, tmp_path / "api.log", **env):
        answer = _create_run(url, "nobody", None)
        assert answer.status_code == 401
        assert "no token configured" in answer.json()["detail"]
        assert "EVALSUITE_API_TOKEN_FILE" in answer.json()["detail"]
        assert _create_run(url, "nobody", TOKEN).status_code == 401
        assert httpx.get(f"{url}/v1/runs/nobody", timeout=30).status_code == 404


def _api_start(database: str, token_file: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``evalsuite api`` as a user starts it; it must exit by itself (timeout: it served)."""
    env = {
        **os.environ,
        "EVALSUITE_DATABASE_URL": database,
        "EVALSUITE_API_TOKEN": "",
        "EVALSUITE_API_TOKEN_FILE": token_file,
    }
    try:
        return subprocess.run(
            [*_evalsuite(), "api", "--port", "0"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed it already
        raise AssertionError(f"'evalsuite api' started serving: {exc.stderr!r}") from None


def _no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def test_a_missing_token_file_stops_the_api_with_a_clear_message(database, tmp_path):
    missing = tmp_path / "no-such-dir" / "tokens"
    result = _api_start(database, str(missing), tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    _no_traceback(result)
    message = " ".join(result.stderr.split())  # rich may wrap the line
    assert "EVALSUITE_API_TOKEN_FILE" in message and str(missing) in message
    assert "No such file or directory" in message
    assert "Uvicorn running" not in result.stderr


def test_an_unreadable_token_file_stops_the_api_with_a_clear_message(database, tmp_path):
    """A directory where the file should be: unreadable as a file, even for root (chmod 000
    does not stop root, who runs the tests in the container)."""
    not_a_file = tmp_path / "tokens.d"
    not_a_file.mkdir()
    result = _api_start(database, str(not_a_file), tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    _no_traceback(result)
    message = " ".join(result.stderr.split())
    assert "EVALSUITE_API_TOKEN_FILE" in message and str(not_a_file) in message
    assert "Is a directory" in message


def test_a_token_file_that_is_not_text_stops_the_api_with_a_clear_message(database, tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_bytes(b"alpha-0123\n\xff\xfe binary\n")
    result = _api_start(database, str(token_file), tmp_path)
    _no_traceback(result)
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = " ".join(result.stderr.split())
    assert "EVALSUITE_API_TOKEN_FILE" in message and str(token_file) in message
