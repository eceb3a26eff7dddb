"""nbgrader configuration of the skinlib course: one assignment per notebook (source/NN_topic/NN_topic.ipynb).

Run nbgrader from this folder (the course root), in the environment where skinlib is installed, activated so that
nbgrader finds its helper commands: `nbgrader generate_assignment 02_splits` and, once submissions are collected,
`nbgrader autograde 02_splits`. A student checks a copy from the repository root with
`make validate NB=teaching/student/02_splits.ipynb`. Written by tools/make_teaching.py.
"""

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
c.CourseDirectory.course_id = "skinlib"
# what a student's code answer starts as: Run All stops there with a message naming the exercise ({number}) and
# saying what to do; skinlib's ClearSolutions puts the number in (nbgrader's has one text for every exercise)
from skinlib.run.exercise_stubs import generate_assignment_steps  # noqa: E402
c.GenerateAssignment.preprocessors = generate_assignment_steps()
c.ClearSolutions.code_stub = {"python": '# YOUR CODE HERE\nraise NotImplementedError("Exercise {number}: write your answer here, in place of this line, then run the test cell below")'}
# kernels over Unix sockets: no warning about unencrypted TCP, no port to collide on
c.KernelManager.transport = "ipc"
