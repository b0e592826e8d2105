"""Numba CUDA kernels: twins of the CPU kernels in ``dslearn.kernels.cpu``, with the same signatures.

``CudaArray`` (``array``) holds a tensor's data in GPU memory and answers NumPy's calls
(``np.exp(x)``, ``x + y``, ``x.sum(axis=1)``, ``np.matmul``) by launching the kernels here, so that
op code written with NumPy runs on the GPU unchanged. The kernels themselves take Numba device
arrays. Without a GPU, Numba's CUDA simulator runs them as Python threads: set
``NUMBA_ENABLE_CUDASIM=1`` before anything imports numba. ``traffic`` counts, in the simulator,
the global and shared memory accesses of each thread of a kernel.

May import: nothing (importing this package does not import ``numba.cuda``; its modules do).
"""
