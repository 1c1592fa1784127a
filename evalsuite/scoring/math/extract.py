"""Find the final answer in a model response or a reference solution.

Two extractors, one per grading mode:

* paper mode takes the text after the LAST ``The answer is: `` (the RaSA / MetaMath prompt
  ends every response that way), cuts it at the first ``.\\n``, strips it and drops one
  trailing ``.``; without the marker there is no answer (the item is invalid, and wrong);
* robust mode takes the same answer when the marker is there, and otherwise the content of
  the last ``\\boxed{...}`` (models that ignore the marker still box their answer).

Gold answers of MATH are the content of the last ``\\boxed{...}`` of the reference solution,
read with brace matching because answers nest braces (``\\boxed{\\frac{1}{2}}``). All scans
here are linear in the length of the text, so they are safe to run outside the worker pool.
"""

from __future__ import annotations

ANSWER_MARKER = "The answer is: "


def extract_paper_answer(response: str) -> str | None:
    """The paper's extraction; ``None`` when the marker is missing (graded invalid)."""
    start = response.rfind(ANSWER_MARKER)
    if start < 0:
        return None
    answer = response[start + len(ANSWER_MARKER) :].split(".\n", 1)[0].strip()
    return answer[:-1] if answer.endswith(".") else answer


def extract_robust_answer(response: str) -> str | None:
    """The paper's answer when the marker is there, else the last boxed answer, else None."""
    answer = extract_paper_answer(response)
    return answer if answer is not None else last_boxed_content(response)


def last_boxed_content(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``), or None.

    Same reading as the MATH reference code (``last_boxed_only_string`` then
    ``remove_boxed``): the last ``\\boxed`` wins (``\\fbox`` only without any); its brace
    group is matched with nesting; the space form ``\\boxed 5`` runs to the next ``$``. A
    box without a brace group, or with an unclosed one, gives None.
    """
    spaced = text.rfind("\\boxed ")
    if spaced >= 0:
        # the reference prefers the space form whenever it occurs anywhere in the text
        return text[spaced + len("\\boxed ") :].split("$", 1)[0]
    command = "\\boxed"
    start = text.rfind(command)
    if start < 0:  # like the reference, \fbox only counts when there is no \boxed at all
        command = "\\fbox"
        start = text.rfind(command)
    if start < 0:
        return None
    brace = start + len(command)
    if brace >= len(text) or text[brace] != "{":
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i]
    return None
