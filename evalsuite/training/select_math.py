"""Regenerate the shipped math training set: ``python -m evalsuite.training.select_math
MATH_TEST MATH500_TEST [OUT]``.

The rule, fixed: of the MATH test set (5,000 problems, ``math/test.jsonl`` of docs/data.md),
drop the 500 problems of MATH-500 (matched by problem text), keep those whose solution has at
most ``MAX_SOLUTION_CHARS`` characters and exactly one ``\\boxed{``, and take the first
``PER_SUBJECT`` of each of the seven subjects in file order (7 x 43 = 301), written in file
order. Short solutions keep a short fine-tune's sequences short; one per subject spreads it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MAX_SOLUTION_CHARS = 400
PER_SUBJECT = 43


def select(math_test: Path, math500: Path) -> list[dict]:
    held_out = {json.loads(line)["problem"].strip() for line in math500.read_text().splitlines()}
    taken: dict[str, int] = {}
    chosen = []
    for line in math_test.read_text().splitlines():
        row = json.loads(line)
        solution = row["solution"]
        if row["problem"].strip() in held_out or len(solution) > MAX_SOLUTION_CHARS:
            continue
        if solution.count("\\boxed{") != 1 or taken.get(row["type"], 0) >= PER_SUBJECT:
            continue
        taken[row["type"]] = taken.get(row["type"], 0) + 1
        chosen.append(row)
    return chosen


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    from evalsuite.training.datasets import MATH_FILE

    out = Path(argv[2]) if len(argv) == 3 else MATH_FILE
    rows = select(Path(argv[0]), Path(argv[1]))
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} problems -> {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
