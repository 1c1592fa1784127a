"""Turn a raw completion into the program that gets executed (PROTOCOL section 2).

The model continues the problem's prompt (imports, signature, docstring) and keeps going
past the function: more functions, tests, prints, a ``__main__`` block. The paper's rule
keeps only the function body: cut at the first stop string, then cut before the first
non-empty line that starts without indentation (anything at module level after the body),
and put the body after the prompt with its trailing whitespace removed (the generation
prompt ends with the rstripped problem prompt, so the completion starts with a newline).
"""

from __future__ import annotations

STOP_STRINGS = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\nassert")


def cut_completion(completion: str) -> str:
    """The part of a completion that belongs to the function body."""
    stops = [i for i in (completion.find(s) for s in STOP_STRINGS) if i != -1]
    if stops:
        completion = completion[: min(stops)]
    at = 0
    for line in completion.splitlines(keepends=True):
        if line.strip() and not line[0].isspace():
            return completion[:at]
        at += len(line)
    return completion


def postprocess_completion(prompt: str, completion: str) -> str:
    """Program = problem prompt (rstripped) + the cut completion."""
    return prompt.rstrip() + cut_completion(completion)
