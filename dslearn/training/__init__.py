"""Training helpers: ``fit``/``evaluate`` loops, metrics and checkpoints.

May import: dslearn.nn, dslearn.optim, dslearn.data, dslearn.serialization and the layers below.
"""

from dslearn.training.checkpoint import load_checkpoint, save_checkpoint
from dslearn.training.loop import evaluate, fit, train_step
from dslearn.training.metrics import accuracy, confusion_matrix
from dslearn.training.mnist import TrainingSummary, train_mnist
