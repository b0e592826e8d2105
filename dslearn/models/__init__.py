"""Ready-made models used by the examples, the CLI, the labs and the benchmarks.

May import: dslearn.nn.
"""

from dslearn.models.mnist import LeNet, MnistMLP, mnist_model
