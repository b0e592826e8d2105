"""nbgrader configuration for the dslearn course (read by `dslearn grade ...` and by plain `nbgrader`).

The course root is the folder that holds labs/ (the nbgrader *source* folder), course/ and grading/.
nbgrader's working folders (release/, submitted/, autograded/, feedback/) and gradebook.db are created
there. `dslearn grade` passes the root explicitly, so it works from any directory; with plain nbgrader,
run from the course root with `--config grading/nbgrader_config.py` (or pass `--course-dir`).
See grading/README.md.
"""

c = get_config()  # noqa: F821  (nbgrader provides get_config when it loads this file)

# The course and where its source notebooks are: labs/<lab-id>/<lab-id>.ipynb, not nbgrader's default source/.
c.CourseDirectory.course_id = "dslearn"
c.CourseDirectory.source_directory = "labs"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".pytest_cache"]

# What replaces a solution in the student version.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding: a lab must autograde in under 2 minutes (course/syllabus.yml, budget), so no cell may take longer.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
c.LimitOutput.max_lines = 300
c.LimitOutput.max_traceback = 60

# Feedback never shows hidden tests: their code is removed and their tracebacks (which quote it) are cut
# down to the exception's type and message.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "dslearn.grading.feedback.RedactHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
