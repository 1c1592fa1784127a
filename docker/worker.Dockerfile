# syntax=docker/dockerfile:1
# The queue worker on NVIDIA GPUs: the official vLLM image (CUDA, torch and vLLM built for each
# other) plus evalsuite with its normal dependencies. torch, vLLM and their CUDA companions
# are pinned to the versions the image has, so pip cannot replace them: if evalsuite ever
# needed other versions, the build fails here instead of shipping a mismatched torch.
#   docker build -f docker/worker.Dockerfile -t evalsuite-worker .   (from the repo root)
ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0
FROM ${VLLM_IMAGE}

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1
# bubblewrap builds the HumanEval+ sandbox's jail (an allowlisted root for generated code);
# libseccomp2 compiles the system-call allowlist each program runs under
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap libseccomp2 \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY evalsuite /src/evalsuite
COPY docker/keep_pins.py /src/keep_pins.py
# the image's torch/vLLM stack held as constraints (read through importlib.metadata: a wheel
# installed from a file freezes as "vllm @ file://", which pip freeze | grep would miss)
RUN python3 /src/keep_pins.py write /tmp/keep.txt \
    && python3 -m pip install -c /tmp/keep.txt /src \
    && python3 /src/keep_pins.py check /tmp/keep.txt \
    && python3 -c "import torch, vllm, evalsuite.cli, evalsuite.engines.vllm" \
    && rm -rf /src

# Runs as root, as the vLLM image does: the HumanEval+ sandbox gives each program its own
# uid and cgroup. Its jail also needs CAP_SYS_ADMIN, a seccomp profile that allows pivot_root
# (docker/seccomp-bwrap.json) and no AppArmor mount ban: docker-compose.yml's worker service
# has all three; a `docker run` must add them (README, "Deployment"), or HumanEval+ jobs fail.
ENV HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
WORKDIR /var/lib/evalsuite
ENTRYPOINT ["evalsuite", "worker"]
CMD ["--engine", "vllm"]
