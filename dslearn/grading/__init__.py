"""Grading: thin wrappers over nbgrader's Python API, feedback without hidden tests, sample submissions.

May import: the standard library, yaml, traitlets, nbconvert, nbgrader, dslearn.course, dslearn.grading.

>>> from dslearn.grading import GradingCourse
>>> GradingCourse("/tmp/course").folder("release", "00-welcome").as_posix()
'/tmp/course/release/00-welcome'
"""

from dslearn.grading.samples import LabCheck, SampleError, SampleSubmission, check_lab, load_samples
from dslearn.grading.workflow import Autograded, CellScore, GradingCourse, GradingError, SubmissionScore
