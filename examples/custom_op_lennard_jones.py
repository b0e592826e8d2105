"""A custom operator from the physics case study: the Lennard-Jones energy of N particles, fused.

The energy of particles at positions x (N, 3) is the sum over pairs i < j of

    V(r) = 4 eps ((sigma / r)^12 - (sigma / r)^6),   r = |x_i - x_j|,

and its gradient with respect to x_i (minus the force on particle i) is

    dE/dx_i = sum_{j != i} V'(r_ij) (x_i - x_j) / r_ij,   V'(r) = 4 eps (6 sigma^6 / r^7 - 12 sigma^12 / r^13).

Written with dslearn ops, the energy builds (N, N, 3) and (N, N) intermediate tensors, and the graph
keeps them for backward. As a custom op it is two Numba kernels (energy, gradient) that loop over
pairs and keep nothing but the positions: the script checks both ways agree (values, gradients,
gradcheck in float64) and prints their time and the memory their graphs hold. With a CUDA device
(or NUMBA_ENABLE_CUDASIM=1) the same op runs its CUDA kernels on tensors moved with ``.to('cuda')``.

Run: python examples/custom_op_lennard_jones.py [--particles 400]
"""

from __future__ import annotations

import argparse
import math
import time

import numba
import numpy as np
from numba import cuda

import dslearn as ds
import dslearn.cuda
from dslearn.custom_op import custom_op
from dslearn.memory import track

# -- CPU kernels: one particle per parallel iteration, no allocation inside the loops ---------------
# (No cache=True: a script runs as __main__ or is imported under other names, and Numba's on-disk
# cache records the module name it compiled under.)


@numba.njit(parallel=True)
def energy_kernel(x, epsilon, sigma):
    """Sum of V over pairs i < j; rows in parallel, each thread sums its own row."""
    n = x.shape[0]
    per_particle = np.zeros(n, dtype=np.float64)
    s6 = sigma ** 6
    for i in numba.prange(n):
        total = 0.0
        for j in range(i + 1, n):
            r2 = (x[i, 0] - x[j, 0]) ** 2 + (x[i, 1] - x[j, 1]) ** 2 + (x[i, 2] - x[j, 2]) ** 2
            inv6 = s6 / (r2 * r2 * r2)
            total += 4.0 * epsilon * (inv6 * inv6 - inv6)
        per_particle[i] = total
    return per_particle.sum()


@numba.njit(parallel=True)
def gradient_kernel(x, epsilon, sigma):
    """dE/dx, one row per particle in parallel; each thread writes only its own row."""
    n = x.shape[0]
    out = np.zeros((n, 3), dtype=np.float64)
    s6 = sigma ** 6
    for i in numba.prange(n):
        for j in range(n):
            if j == i:
                continue
            d0, d1, d2 = x[i, 0] - x[j, 0], x[i, 1] - x[j, 1], x[i, 2] - x[j, 2]
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            inv6 = s6 / (r2 * r2 * r2)
            scale = 4.0 * epsilon * (6.0 * inv6 - 12.0 * inv6 * inv6) / r2  # V'(r) / r
            out[i, 0] += scale * d0
            out[i, 1] += scale * d1
            out[i, 2] += scale * d2
    return out


# -- CUDA kernels: one thread per particle (grid-stride), same arithmetic -------------------------


@cuda.jit
def _energy_cuda_kernel(x, epsilon, sigma, per_particle):
    s6 = sigma ** 6
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        total = 0.0
        for j in range(i + 1, x.shape[0]):
            r2 = (x[i, 0] - x[j, 0]) ** 2 + (x[i, 1] - x[j, 1]) ** 2 + (x[i, 2] - x[j, 2]) ** 2
            inv6 = s6 / (r2 * r2 * r2)
            total += 4.0 * epsilon * (inv6 * inv6 - inv6)
        per_particle[i] = total


@cuda.jit
def _gradient_cuda_kernel(x, epsilon, sigma, out):
    s6 = sigma ** 6
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        g0 = g1 = g2 = 0.0
        for j in range(x.shape[0]):
            if j != i:
                d0, d1, d2 = x[i, 0] - x[j, 0], x[i, 1] - x[j, 1], x[i, 2] - x[j, 2]
                r2 = d0 * d0 + d1 * d1 + d2 * d2
                inv6 = s6 / (r2 * r2 * r2)
                scale = 4.0 * epsilon * (6.0 * inv6 - 12.0 * inv6 * inv6) / r2
                g0 += scale * d0
                g1 += scale * d1
                g2 += scale * d2
        out[i, 0], out[i, 1], out[i, 2] = g0, g1, g2


def _launch(kernel, x, epsilon, sigma, out_shape):
    """Run a CUDA kernel on a CudaArray of positions; returns a CudaArray of out_shape."""
    from dslearn.kernels.cuda.array import CudaArray
    from dslearn.kernels.cuda.runtime import THREADS, blocks_for

    positions = x.astype(np.float64).device_array() if x.dtype != np.float64 else x.device_array()
    out = cuda.device_array(out_shape, dtype=np.float64)
    kernel[blocks_for(x.shape[0]), THREADS](positions, float(epsilon), float(sigma), out)
    return CudaArray.from_device_array(out)


def energy_cuda(x, *, epsilon, sigma):
    return np.sum(_launch(_energy_cuda_kernel, x, epsilon, sigma, (x.shape[0],))).astype(x.dtype)


def gradient_cuda(x, *, epsilon, sigma):
    return _launch(_gradient_cuda_kernel, x, epsilon, sigma, (x.shape[0], 3)).astype(x.dtype)


# -- the ops ------------------------------------------------------------------------------------------


@custom_op("lennard_jones_gradient", cuda=gradient_cuda, differentiable=False)
def lennard_jones_gradient(x, *, epsilon, sigma):
    """dE/dx of the Lennard-Jones energy (N, 3); first-order only."""
    return gradient_kernel(x.astype(np.float64), epsilon, sigma).astype(x.dtype)


@custom_op("lennard_jones", cuda=energy_cuda)
def lennard_jones(x, *, epsilon, sigma):
    """The Lennard-Jones energy of particles at x (N, 3), a 0-d tensor."""
    return np.asarray(energy_kernel(x.astype(np.float64), epsilon, sigma), dtype=x.dtype)


@lennard_jones.backward
def lennard_jones_backward(ctx, grad):
    (x,) = ctx.inputs
    return grad * lennard_jones_gradient(x, **ctx.attrs)


def lennard_jones_composed(x: ds.Tensor, epsilon: float, sigma: float) -> ds.Tensor:
    """The same energy from dslearn ops: (N, N, 3) differences, (N, N) distances, an upper-triangle mask."""
    n = x.shape[0]
    diff = x.unsqueeze(1) - x.unsqueeze(0)
    r2 = (diff * diff).sum(-1) + ds.eye(n, dtype=x.dtype)  # the diagonal (masked out below) stays finite
    inv6 = (sigma ** 2 / r2) ** 3
    upper = ds.tensor(np.triu(np.ones((n, n)), 1), dtype=x.dtype)
    return (4 * epsilon * (inv6 * inv6 - inv6) * upper).sum()


def lattice(n: int, spacing: float = 1.2, jitter: float = 0.05, seed: int = 0, dtype=ds.float64) -> ds.Tensor:
    """n particles on a jittered cubic lattice (no two closer than about spacing - 2 jitter)."""
    side = math.ceil(n ** (1 / 3))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] * spacing
    noise = np.random.default_rng(seed).uniform(-jitter, jitter, grid.shape)
    return ds.tensor(grid + noise, dtype=dtype, requires_grad=True)


def best_time(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=400)
    n = parser.parse_args().particles
    params = {"epsilon": 1.0, "sigma": 1.0}

    small = lattice(12)
    print("gradcheck (12 particles, float64):", ds.debug.gradcheck(lambda x: lennard_jones(x, **params), [small]))

    x = lattice(n)
    fused = lennard_jones(x, **params)
    (fused_grad,) = ds.autograd.grad(fused, [x])
    composed = lennard_jones_composed(x, **params)
    (composed_grad,) = ds.autograd.grad(composed, [x])
    print(f"{n} particles: energy fused {fused.item():.6f}, composed {composed.item():.6f}; largest gradient "
          f"difference {np.abs(fused_grad.numpy() - composed_grad.numpy()).max():.2e}")

    for name, energy in [("fused op", lambda x: lennard_jones(x, **params)),
                         ("composed ops", lambda x: lennard_jones_composed(x, **params))]:
        with track() as memory:
            value = energy(x)
        seconds = best_time(lambda energy=energy: ds.autograd.grad(energy(x), [x]))
        print(f"  {name:<13} forward + backward {seconds * 1e3:8.2f} ms (best of 5); graph holds "
              f"{memory.activation_bytes / 2 ** 20:7.2f} MiB of activations")
        del value

    with ds.profiler.profile() as prof:
        lennard_jones(x, **params).backward()
    print("profiler:", sorted(row.name for row in prof.key_averages()))

    if dslearn.cuda.is_available():
        on_gpu = x.detach().to("cuda").requires_grad_()
        energy = lennard_jones(on_gpu, **params)
        energy.backward()
        print(f"CUDA ({dslearn.cuda.get_device_name()}): energy {energy.item():.6f}, largest gradient difference "
              f"{np.abs(on_gpu.grad.cpu().numpy() - fused_grad.numpy()).max():.2e}")


if __name__ == "__main__":
    main()
