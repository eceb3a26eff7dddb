"""nbgrader configuration of the skinlib course: one assignment per notebook (source/NN_topic/NN_topic.ipynb).

Run nbgrader from this folder (the course root), in the environment where skinlib is installed, activated so that
nbgrader finds its helper commands: `nbgrader generate_assignment 02_splits` and, once submissions are collected,
`nbgrader autograde 02_splits`. Written by tools/make_teaching.py.
"""

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
c.CourseDirectory.course_id = "skinlib"
