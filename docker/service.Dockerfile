# syntax=docker/dockerfile:1
# The results service: `evalsuite db`, `evalsuite api` and `evalsuite dashboard`.
# Slim: no torch, transformers, lm-eval or vLLM. evalsuite goes in with --no-deps and the
# service's own requirements come from docker/requirements-service.txt.
#   docker build -f docker/service.Dockerfile -t evalsuite-service .   (from the repo root)

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/evalsuite
COPY docker/requirements-service.txt /tmp/requirements-service.txt
RUN /opt/evalsuite/bin/pip install -r /tmp/requirements-service.txt
COPY pyproject.toml README.md /src/
COPY evalsuite /src/evalsuite
RUN /opt/evalsuite/bin/pip install --no-deps /src \
    && /opt/evalsuite/bin/python -c "import evalsuite.api.app, evalsuite.dashboard.app" \
    && ! /opt/evalsuite/bin/python -c "import torch" 2>/dev/null

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /home/evalsuite evalsuite
COPY --from=build /opt/evalsuite /opt/evalsuite
COPY docker/healthcheck.py /opt/evalsuite/healthcheck.py
ENV PATH=/opt/evalsuite/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER evalsuite
WORKDIR /home/evalsuite
EXPOSE 8000 8501
# the API's /v1/health; the dashboard's service passes its own URL (see docker-compose.yml)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "/opt/evalsuite/healthcheck.py"]
CMD ["evalsuite", "api", "--host", "0.0.0.0", "--port", "8000"]
