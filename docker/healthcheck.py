"""Container health check: exit 0 when URL answers 2xx within 4 s, else 1.

    python healthcheck.py [URL]   # default: the API's /v1/health on port 8000

Sends ``Authorization: Bearer $EVALSUITE_API_TOKEN`` when that is set, so the check still
passes with ``EVALSUITE_API_READ_AUTH=1`` (then /v1/health needs a token). Standard library
only: the slim image has no curl.
"""

import os
import sys
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/v1/health"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    token = os.environ.get("EVALSUITE_API_TOKEN", "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=4):
            return 0
    except Exception as exc:  # refused, timeout, 4xx/5xx: all mean unhealthy
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
