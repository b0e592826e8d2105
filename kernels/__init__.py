"""dslearn's compute kernels: Numba CPU kernels (``cpu``), Numba CUDA kernels (``cuda``) and
the NumPy references the tests compare them with (``reference``).

Arrays in, arrays out: nothing here knows about Tensor or autograd. This folder lives at the
top of the repository and is installed as ``dslearn.kernels``.

Set ``NUMBA_DISABLE_JIT=1`` to run every kernel as plain, debuggable Python.
"""
