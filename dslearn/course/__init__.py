"""The course platform: the syllabus model, lab validation, the headless runner, reports, the index, progress.

``course/syllabus.yml`` is the one source of truth for the learning path; everything here reads it.
Heavy tools (papermill, nbformat) are imported inside the functions that need them.

May import: the standard library, yaml, nbformat, papermill, psutil, tqdm, dslearn.course.

>>> from dslearn.course import load_syllabus
>>> load_syllabus().lab("00-welcome").title
'Welcome to dslearn'
"""

from dslearn.course.syllabus import Budget, Lab, Level, Syllabus, SyllabusError, Unit, find_course_root, load_syllabus
