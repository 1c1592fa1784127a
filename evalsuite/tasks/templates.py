"""Render a task's prompt template (Jinja2) with a document's fields."""

from __future__ import annotations

import hashlib
from functools import cached_property

import jinja2

from evalsuite.tasks import prompts_dir
from evalsuite.tasks.errors import TaskError
from evalsuite.tasks.spec import TaskSpec


class PromptTemplate:
    def __init__(self, spec: TaskSpec):
        self.spec = spec
        if spec.prompt_template is not None:
            self.text = spec.prompt_template
        else:
            candidates = [spec.source.parent / spec.prompt_file, prompts_dir() / spec.prompt_file]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise TaskError(
                    f"{spec.source}: prompt file {spec.prompt_file!r} is neither beside the task "
                    f"nor in {prompts_dir()}"
                )
            self.text = path.read_text()
        env = jinja2.Environment(
            undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
        )
        try:
            self._template = env.from_string(self.text)
        except jinja2.TemplateSyntaxError as e:
            raise TaskError(f"{spec.source}: prompt template error: {e}") from e

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def render(self, doc: dict, doc_id: str) -> str:
        try:
            return self._template.render(**doc)
        except jinja2.UndefinedError as e:
            raise TaskError(
                f"task {self.spec.name}, document {doc_id}: the prompt uses a field the document "
                f"does not have ({e.message})"
            ) from e
