"""The results service: FastAPI app over the store (contract: docs/api.md)."""
