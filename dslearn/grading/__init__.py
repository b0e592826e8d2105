"""Grading: nbgrader's workflow, and a sandboxed, parallel, resumable grader that students cannot fool.

The nbgrader side: thin wrappers over nbgrader's Python API (``GradingCourse``), feedback without
hidden tests, sample submissions with expected scores (``check_lab``). The sandboxed side: ``grade``
runs one submission in a sandbox (``sandbox``, ``launcher``, ``runner``) and scores it from plain data
with the lab's probes (``probes``); ``autograde_class`` grades a class on a local pool or a Dask
cluster into a resumable ``Gradebook``. grading/README.md explains both and the threat model.

May import: the standard library, yaml, traitlets, nbconvert, nbgrader, numpy, dslearn.course, dslearn.grading.

>>> from dslearn.grading import GradingCourse
>>> GradingCourse("/tmp/course").folder("release", "00-welcome").as_posix()
'/tmp/course/release/00-welcome'
"""

from dslearn.grading.gradebook import Gradebook
from dslearn.grading.grader import Assignment, CellResult, GradeResult, Submission, grade
from dslearn.grading.isolation import IsolationReport, check_isolation
from dslearn.grading.pool import ClassRun, autograde_class, collect_submissions
from dslearn.grading.samples import LabCheck, SampleError, SampleSubmission, check_lab, load_samples
from dslearn.grading.sandbox import Limits
from dslearn.grading.workflow import Autograded, CellScore, GradingCourse, GradingError, SubmissionScore
