"""Hold the vLLM image's own torch/vLLM stack while evalsuite is installed on top of it.

``write FILE``: the installed versions of the packages that must not move, as ``name==version``
constraints, read through ``importlib.metadata``. ``pip freeze`` is not used for this: a
package installed from a wheel file freezes as ``vllm @ file:///...``, which a
``^vllm==`` match misses, and the build would then fail (or, worse, let pip move vLLM).
``check FILE``: after the install, every held package is still at its version.

Fails (exit 1, naming the package) when torch or vllm is missing, or when a version moved.
Standard library only: it runs in the base image before evalsuite is installed.
"""

from __future__ import annotations

import sys
from importlib import metadata

HELD = ("torch", "torchvision", "torchaudio", "vllm", "triton", "xformers")
HELD += ("flashinfer-python", "transformers", "tokenizers")
REQUIRED = ("torch", "vllm")


def installed() -> dict[str, str]:
    found = {}
    for name in HELD:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write(path: str) -> int:
    found = installed()
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        print(f"keep_pins: {', '.join(missing)} not installed in the base image", file=sys.stderr)
        return 1
    with open(path, "w") as f:
        f.writelines(f"{name}=={version}\n" for name, version in sorted(found.items()))
    return 0


def check(path: str) -> int:
    with open(path) as f:
        wanted = dict(line.strip().split("==", 1) for line in f if line.strip())
    now = installed()
    moved = [f"{n} {v} -> {now.get(n, 'absent')}" for n, v in wanted.items() if now.get(n) != v]
    if moved:
        print(f"keep_pins: the install moved {'; '.join(moved)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        print("usage: keep_pins.py write|check FILE", file=sys.stderr)
        sys.exit(2)
    sys.exit((write if sys.argv[1] == "write" else check)(sys.argv[2]))
