"""``EVALSUITE_API_TOKEN_FILE``: several tokens, one per line, through ``evalsuite api``.

The format (evalsuite/tokens.py, docs/api.md): one token per line, surrounding
whitespace (and a CRLF line end) stripped, blank lines and ``#`` comment lines skipped (a
comment is never a token); after the token a line may give ``name=NAME`` and
``runs=GLOB[,GLOB...]`` (what a scoped token may write: tests/test_api_scoped_tokens.py).
Every token is accepted and the file's tokens add to ``EVALSUITE_API_TOKEN``. A file that
cannot be read, or a line that cannot be parsed, stops ``evalsuite api`` before it serves
anything, with one line that names the variable, the file (and the line).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_support import TOKEN, free_port, make_database

from evalsuite.settings import Settings, SettingsError
from evalsuite.store import migrate
from evalsuite.tokens import Grant, fingerprint

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


def _grants(monkeypatch, path: Path, text: str, env_token: str = "") -> tuple[Grant, ...]:
    path.write_text(text)
    monkeypatch.setenv("EVALSUITE_API_TOKEN", env_token)
    monkeypatch.setenv("EVALSUITE_API_TOKEN_FILE", str(path))
    return Settings.from_env().grants


def test_a_line_names_and_scopes_its_token(monkeypatch, tmp_path):
    text = (
        "plain-1\n"
        "  alice-2  name=alice   runs=team-a-*\n"
        "bob-3\truns=team-b-*,shared-?\n"
        "# carol-4 name=carol runs=x-*\n"
        "pad==5 name=base64.padded@ci\n"  # a token may end in '=' (base64 padding)
    )
    grants = _grants(monkeypatch, tmp_path / "tokens", text, env_token="env-0")
    assert grants == (
        Grant("env-0"),
        Grant("plain-1"),
        Grant("alice-2", name="alice", runs=("team-a-*",)),
        Grant("bob-3", runs=("team-b-*", "shared-?")),
        Grant("pad==5", name="base64.padded@ci"),
    )
    env, plain, alice, bob, padded = grants
    assert not env.scoped and not plain.scoped and alice.scoped
    assert env.label == fingerprint("env-0") == "sha256:" + hashlib.sha256(b"env-0").hexdigest()[:8]
    assert alice.label == "alice" and bob.label == fingerprint("bob-3")
    assert alice.allows("team-a-x") and not alice.allows("team-b-x")
    assert not alice.allows("Team-a-x")  # case-sensitive on every platform
    assert bob.allows("shared-1") and not bob.allows("shared-12") and bob.allows("team-b-")
    assert plain.allows("anything") and "alice-2" not in repr(alice)
    assert padded.label == "base64.padded@ci" and not padded.scoped


def test_identical_lines_are_one_token(monkeypatch, tmp_path):
    grants = _grants(monkeypatch, tmp_path / "t", "a name=x runs=p-*\na name=x runs=p-*\n", "a2")
    assert len(grants) == 2


MALFORMED = {
    "space-in-token": ("secret-half other-half", "word 2 is not key=value", "other-half"),
    "unknown-key": ("tok nmae=alice", "nmae= is not a field", None),
    "empty-runs": ("tok runs=", "empty pattern", None),
    "empty-pattern": ("tok runs=a-*,,b-*", "empty pattern", None),
    "bad-name": ("tok name=al/ice", "is not a name", None),
    "repeated-key": ("tok runs=a-* runs=b-*", "runs= is given twice", None),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_line_is_refused_naming_the_file_and_line(monkeypatch, tmp_path, case):
    line, why, secret_part = MALFORMED[case]
    path = tmp_path / "tokens"
    with pytest.raises(SettingsError) as caught:
        _grants(monkeypatch, path, f"# header\ngood-token\n\n{line}\n")
    message = str(caught.value)
    assert f"EVALSUITE_API_TOKEN_FILE {path} line 4" in message, message
    assert why in message and "TOKEN [name=NAME] [runs=GLOB[,GLOB...]]" in message
    assert "tok " not in message and "secret-half" not in message
    if secret_part:  # a token split by a space must not reach the log either
        assert secret_part not in message


def test_one_token_with_two_scopes_or_one_name_for_two_tokens_is_refused(monkeypatch, tmp_path):
    path = tmp_path / "tokens"
    with pytest.raises(SettingsError, match=r"line 2 repeats the token of .* line 1"):
        _grants(monkeypatch, path, "tok runs=a-*\ntok runs=b-*\n")
    with pytest.raises(
        SettingsError, match=r"line 3 reuses name=ci, already the name of .* line 1"
    ):
        _grants(monkeypatch, path, "t1 name=ci\n\nt2 name=ci\n")
    with pytest.raises(SettingsError, match="repeats the token of EVALSUITE_API_TOKEN"):
        _grants(monkeypatch, path, "env-tok runs=a-*\n", env_token="env-tok")


def test_a_malformed_line_stops_the_api_with_a_clear_message(database, tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text("ok-token\nalice-secret name=alice runs=team-a-* team=b\n")
    result = _api_start(database, str(token_file), tmp_path)
    _no_traceback(result)
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = " ".join(result.stderr.split())
    assert f"EVALSUITE_API_TOKEN_FILE {token_file} line 2" in message
    assert "team= is not a field" in message and "alice-secret" not in message
