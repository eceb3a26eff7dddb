"""nbgrader's solution clearing with a stub that names its exercise, for the students' copies (``make teaching``)
and ``nbgrader generate_assignment`` (``teaching/nbgrader_config.py`` puts it in place of nbgrader's own).

nbgrader replaces every code answer by one stub text for the whole course. A student's Run All stops at the first
stub: its message says which exercise that is ("Exercise 1: write your answer here, ..."), the number taken from
the ``### Exercise N`` heading above the answer. nbgrader itself is imported only where this module is (the
``teaching`` extra).
"""

from __future__ import annotations

import re

from nbgrader.preprocessors import ClearSolutions

#: what a student's code answer starts as; ``{number}``: its exercise's number
CODE_STUB = ("# YOUR CODE HERE\n"
             'raise NotImplementedError("Exercise {number}: write your answer here, in place of this line, '
             'then run the test cell below")')
#: an exercise's heading in the notebooks (``### Exercise 2 (3 points): ...``)
HEADING = re.compile(r"^###\s+Exercise\s+(\d+)\b")


def exercise_numbers(cells: list) -> list[int | None]:
    """For each cell, the number of the ``### Exercise N`` heading at or above it (None before the first)."""
    numbers: list[int | None] = []
    number = None
    for cell in cells:
        found = HEADING.match(cell.source) if cell.cell_type == "markdown" else None
        number = int(found.group(1)) if found else number
        numbers.append(number)
    return numbers


class NumberedClearSolutions(ClearSolutions):
    """:class:`nbgrader.preprocessors.ClearSolutions` whose Python code stub names the exercise each answer belongs
    to (:data:`CODE_STUB`); configured as nbgrader's (``c.ClearSolutions.*`` applies to it too)."""

    def preprocess(self, nb, resources):
        self._numbers = exercise_numbers(nb.cells)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        stubs = self.code_stub
        number = self._numbers[cell_index]
        if cell.cell_type == "code" and "{number}" in stubs.get("python", "") and \
                cell.metadata.get("nbgrader", {}).get("solution"):
            if number is None:
                raise ValueError(f"cell {cell_index}: a code answer with no '### Exercise N' heading above it (its stub "
                                 "names its exercise): put the answer under its exercise's heading")
            self.code_stub = {**stubs, "python": stubs["python"].replace("{number}", str(number))}
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self.code_stub = stubs


def generate_assignment_steps() -> list[type]:
    """The preprocessors of nbgrader's ``GenerateAssignment``, in its order, with :class:`NumberedClearSolutions` in
    place of ``ClearSolutions`` (``teaching/nbgrader_config.py`` sets them; ``make teaching`` applies them)."""
    from nbgrader.converters import GenerateAssignment

    default = GenerateAssignment.class_traits()["preprocessors"].default()
    return [NumberedClearSolutions if step is ClearSolutions else step for step in default]
