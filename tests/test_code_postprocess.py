"""PROTOCOL section 2 post-processing: cut at the first stop string, then before module level."""

from __future__ import annotations

import pytest

from evalsuite.scoring.code.postprocess import STOP_STRINGS, cut_completion, postprocess_completion

PROMPT = 'def f(x):\n    """Double x."""\n'


@pytest.mark.parametrize(
    ("completion", "kept"),
    [
        ("\n    return 2 * x\n\ndef g():\n    pass\n", "\n    return 2 * x\n"),
        ("\n    return 2 * x\nprint(f(1))\n", "\n    return 2 * x"),
        ("\n    return 2 * x\n# test\n", "\n    return 2 * x"),
        ("\n    return 2 * x\n@decorator\ndef g(): pass", "\n    return 2 * x"),
        ("\n    return 2 * x\nclass A:\n    pass", "\n    return 2 * x"),
        ("\n    return 2 * x\nassert f(1) == 2", "\n    return 2 * x"),
        ("\n    return 2 * x\nif __name__ == '__main__':\n    f(1)", "\n    return 2 * x"),
        # the earliest stop string wins, whichever comes first in STOP_STRINGS
        ("\n    return 2 * x\nassert 1\ndef g(): pass", "\n    return 2 * x"),
        # module-level code that is no stop string: cut before that line
        ("\n    return 2 * x\nresult = f(3)\n", "\n    return 2 * x\n"),
        ("\n    return 2 * x\n\n\nx = 1\n    y = 2\n", "\n    return 2 * x\n\n\n"),
        # indented if / print / comments inside the body stay
        (
            "\n    if x:\n        print(x)  # note\n    # done\n    return 2 * x\n",
            "\n    if x:\n        print(x)  # note\n    # done\n    return 2 * x\n",
        ),
        # no indentation at all: nothing of it belongs to the body
        ("return 2 * x\n", ""),
        ("", ""),
    ],
)
def test_cut_completion(completion: str, kept: str) -> None:
    assert cut_completion(completion) == kept


def test_program_is_rstripped_prompt_plus_cut_completion() -> None:
    program = postprocess_completion(PROMPT + "\n\n", "\n    return 2 * x\nprint(1)")
    assert program == 'def f(x):\n    """Double x."""\n    return 2 * x'
    namespace: dict = {}
    exec(compile(program, "<program>", "exec"), namespace)  # our own text, not a sample
    assert namespace["f"](4) == 8


def test_stop_strings_are_the_protocol_list() -> None:
    assert STOP_STRINGS == ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\nassert")
