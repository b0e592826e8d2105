"""Plain NumPy reference implementations of the kernels: slow, obvious, and what tests trust."""
