"""Visualisation for notebooks: live training dashboards, progress bars and static plotly figures.

Everything here works in two settings. With a person at a notebook, ``TrainingDashboard`` is a
plotly ``FigureWidget`` with ipywidgets controls and ``progress`` a notebook progress bar. In a
headless run (nbgrader's ``NBGRADER_EXECUTION`` or the course runner's ``DSLEARN_HEADLESS``, see
``is_headless``) no widget is created: the dashboard keeps a static figure and bars stay quiet.
The figure functions (``plot_history``, ``plot_confusion_matrix``, ``show_images``,
``plot_profile``, ``plot_graph``) always return plain ``plotly.graph_objects.Figure`` objects,
which execute and save without a browser.

May import: plotly, ipywidgets, IPython, tqdm, numpy, dslearn.tensor (and the layers below it).

>>> from dslearn import viz
>>> viz.plot_history({"train_loss": [0.8, 0.3]}).data[0].name
'train_loss'
"""

from dslearn.environment import HEADLESS_VARIABLES, is_headless
from dslearn.viz.dashboard import TrainingDashboard, smooth
from dslearn.viz.figures import plot_confusion_matrix, plot_history, plot_profile, show_images
from dslearn.viz.graph import plot_graph
from dslearn.viz.progress import progress

__all__ = ["HEADLESS_VARIABLES", "TrainingDashboard", "is_headless", "plot_confusion_matrix", "plot_graph",
           "plot_history", "plot_profile", "progress", "show_images", "smooth"]
