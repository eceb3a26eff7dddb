"""nbgrader in the server `make student` starts from the repository root (JUPYTER_CONFIG_PATH=jupyter/teaching): the
course is teaching/, which holds the course's own nbgrader_config.py (written by tools/make_teaching.py). Without this
file nbgrader's menus looked for a configuration in the server's folder and logged that none was found."""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
c.CourseDirectory.root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                       "teaching"))
