"""``evalsuite.settings``: every EVALSUITE_* variable read in one place, once, and documented.

The cache root is the one ``EVALSUITE_CACHE_DIR`` names (the HumanEval+ ground truth once
ignored it and wrote to the user cache dir); every variable reaches its field, a bad value
is a one-line ``SettingsError``; README's "Configuration" lists exactly these variables, and
no other module of the package names one in code.
"""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest
from test_code_helpers import write_samples, write_toy_dataset

from evalsuite.scoring.code.score import score_humaneval_plus
from evalsuite.settings import (
    DEFAULT_API_URL,
    ENVIRONMENT,
    Settings,
    SettingsError,
    cache_root,
    environment_for,
    get_settings,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "evalsuite"
NAME = re.compile(r"EVALSUITE_[A-Z0-9_]+")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """Set variables (every EVALSUITE_* one unset first), then read settings afresh."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)

    def read(**values: str) -> Settings:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return get_settings()

    return read


def test_truth_cache_goes_under_evalsuite_cache_dir(tmp_path: Path, monkeypatch, env) -> None:
    cache, xdg = tmp_path / "cache", tmp_path / "xdg"
    xdg.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    env(EVALSUITE_CACHE_DIR=str(cache))
    data = write_toy_dataset(tmp_path)
    rows = [
        {"task_id": "Toy/0", "solution": "def add(a, b):\n    return a + b\n"},
        {"task_id": "Toy/1", "solution": "def half(x):\n    return x / 2\n"},
    ]
    report = score_humaneval_plus(write_samples(tmp_path / "s.jsonl", rows), dataset=data)
    assert [s.status for s in report.samples] == ["pass", "pass"]
    written = [p for p in (cache / "humaneval_plus").rglob("*") if p.is_file()]
    assert written, "no ground truth cached under EVALSUITE_CACHE_DIR"
    assert not [p for p in xdg.rglob("*") if "evalsuite" in p.parts], "wrote the user cache"


def test_cache_root_defaults_to_the_user_cache_dir(tmp_path: Path, monkeypatch, env) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    env()
    assert cache_root() == tmp_path / "evalsuite"
    assert get_settings().jobs_dir == tmp_path / "evalsuite" / "jobs"
    env(EVALSUITE_CACHE_DIR=str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" and get_settings().jobs_dir == tmp_path / "c" / "jobs"
    env(EVALSUITE_WORK_DIR=str(tmp_path / "w"))
    assert get_settings().jobs_dir == tmp_path / "w"


def test_defaults(env) -> None:
    settings = env()
    assert settings == Settings()
    assert settings.client_api_url == DEFAULT_API_URL and settings.tokens == frozenset()


READS = [
    ("EVALSUITE_API_URL", "http://api:9", "api_url", "http://api:9"),
    ("EVALSUITE_API_TOKEN", " secret ", "api_token", "secret"),
    ("EVALSUITE_DATABASE_URL", "sqlite:////x.db", "database_url", "sqlite:////x.db"),
    ("EVALSUITE_CACHE_DIR", "/c", "cache_dir", Path("/c")),
    ("EVALSUITE_WORK_DIR", "/w", "work_dir", Path("/w")),
    ("EVALSUITE_API_READ_AUTH", "1", "read_auth", True),
    ("EVALSUITE_API_READ_AUTH", "TRUE", "read_auth", True),
    ("EVALSUITE_API_READ_AUTH", "no", "read_auth", False),
    ("EVALSUITE_MAX_ATTEMPTS", "5", "max_attempts", 5),
    ("EVALSUITE_API_MAX_BODY_BYTES", "1024", "max_body_bytes", 1024),
    ("EVALSUITE_API_MAX_JSON_DEPTH", "200", "max_json_depth", 200),
    ("EVALSUITE_API_MAX_READ_BODY_BYTES", "4096", "max_read_body_bytes", 4096),
    ("EVALSUITE_API_HEADER_TIMEOUT", "3", "header_timeout_s", 3),
    ("EVALSUITE_API_MAX_CONNECTIONS", "20", "max_connections", 20),
    ("EVALSUITE_KV_CACHE_BYTES", "268435456", "kv_cache_bytes", 268435456),
    ("EVALSUITE_ALLOW_BASIC_SANDBOX", "1", "allow_basic_sandbox", True),
]


@pytest.mark.parametrize(("name", "raw", "attr", "value"), READS)
def test_each_variable_reaches_its_field(env, name, raw, attr, value) -> None:
    settings = env(**{name: raw})
    assert getattr(settings, attr) == value
    assert ENVIRONMENT[name]  # and it is a documented variable


def test_every_variable_is_read() -> None:
    assert {name for name, *_ in READS} | {"EVALSUITE_API_TOKEN_FILE"} == set(ENVIRONMENT)
    assert {f.name for f in fields(Settings)} - {"grants"} == {attr for *_, attr, _ in READS} | {
        "api_token_file"
    }


def test_tokens_are_the_token_and_the_file_lines(tmp_path: Path, env) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("a\n\n  b  \n")
    settings = env(EVALSUITE_API_TOKEN="t", EVALSUITE_API_TOKEN_FILE=str(token_file))
    assert settings.api_token_file == token_file
    assert settings.tokens == frozenset({"t", "a", "b"})


def test_read_once_until_the_cache_is_cleared(env, monkeypatch) -> None:
    assert env(EVALSUITE_MAX_ATTEMPTS="4").max_attempts == 4
    monkeypatch.setenv("EVALSUITE_MAX_ATTEMPTS", "7")
    assert get_settings().max_attempts == 4
    get_settings.cache_clear()
    assert get_settings().max_attempts == 7


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("EVALSUITE_MAX_ATTEMPTS", "three", "EVALSUITE_MAX_ATTEMPTS must be an integer >= 1"),
        ("EVALSUITE_MAX_ATTEMPTS", "0", "EVALSUITE_MAX_ATTEMPTS must be an integer >= 1"),
        ("EVALSUITE_API_MAX_BODY_BYTES", "1e6", "must be an integer >= 1, not '1e6'"),
        ("EVALSUITE_API_MAX_JSON_DEPTH", "500", "must be an integer between 1 and 200"),
        ("EVALSUITE_API_HEADER_TIMEOUT", "0.5", "EVALSUITE_API_HEADER_TIMEOUT must be an integer"),
        ("EVALSUITE_API_MAX_CONNECTIONS", "0", "EVALSUITE_API_MAX_CONNECTIONS must be an integer"),
        ("EVALSUITE_KV_CACHE_BYTES", "-1", "EVALSUITE_KV_CACHE_BYTES must be an integer >= 1"),
        ("EVALSUITE_API_READ_AUTH", "maybe", "EVALSUITE_API_READ_AUTH must be 1 or 0"),
        ("EVALSUITE_ALLOW_BASIC_SANDBOX", "y", "EVALSUITE_ALLOW_BASIC_SANDBOX must be 1 or 0"),
        ("EVALSUITE_API_TOKEN_FILE", "/no/such/file", "cannot read EVALSUITE_API_TOKEN_FILE"),
    ],
)
def test_a_bad_value_says_what_is_allowed(env, name, raw, says) -> None:
    with pytest.raises(SettingsError, match=re.escape(says)):
        env(**{name: raw})


def test_environment_for_gives_a_child_the_same_settings(env) -> None:
    given = environment_for(api_url="http://a:1", database_url="sqlite:////d.db", work_dir=None)
    assert given == {"EVALSUITE_API_URL": "http://a:1", "EVALSUITE_DATABASE_URL": "sqlite:////d.db"}
    settings = env(**given)
    assert (settings.api_url, settings.database_url) == ("http://a:1", "sqlite:////d.db")
    with pytest.raises(TypeError, match="tokens"):
        environment_for(tokens="x")


def _configuration_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]


def test_readme_configuration_lists_every_variable_once() -> None:
    rows = re.findall(r"^\| `(EVALSUITE_[A-Z0-9_]+)` \|", _configuration_section(), re.M)
    assert sorted(rows) == sorted(ENVIRONMENT), "README 'Configuration' and Settings differ"
    assert len(rows) == len(set(rows))


def _named_in_code(path: Path) -> set[str]:
    """EVALSUITE_* names used as values (a whole string constant, e.g. an ``os.environ``
    key or a typer ``envvar``); names inside messages and docstrings do not count."""
    tree = ast.parse(path.read_text(), str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and NAME.fullmatch(node.value)
    }


def test_no_module_but_settings_names_a_variable_in_code() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "settings.py":
            continue
        if names := _named_in_code(path):
            found[relative] = sorted(names)
    assert not found, f"read these through evalsuite.settings instead: {found}"
    assert _named_in_code(PACKAGE / "settings.py") >= set(ENVIRONMENT)
