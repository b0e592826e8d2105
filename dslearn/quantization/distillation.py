"""Knowledge distillation: train a small or low-bit student to match a teacher's softened predictions.

Hinton et al. (2015): with temperature ``T`` the teacher's softmax ``softmax(teacher / T)``
spreads probability over the wrong classes in an informative way ("a 7 looks a bit like a
1"). The student minimises

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * cross_entropy(student, targets)

The ``T^2`` keeps the soft term's gradients on the same scale whatever the temperature. The
same loss recovers the accuracy of a quantized student (a QAT model at 4 bits, taught by its
own float version) and of a smaller architecture (the seed's 23M-to-1.2M-parameter case).

May import: dslearn.tensor, dslearn.autograd, dslearn.ops, dslearn.nn, tqdm.

>>> import dslearn as ds
>>> student, teacher = ds.tensor([[1.0, 2.0, 0.5]]), ds.tensor([[1.0, 2.0, 0.5]])
>>> distillation_loss(student, teacher, temperature=4.0).item()  # identical predictions: no soft loss
0.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from tqdm.auto import tqdm

from dslearn.autograd.grad_mode import no_grad
from dslearn.nn.module import Module
from dslearn.ops.arguments import describe, to_tensor
from dslearn.ops.loss import cross_entropy, kl_div
from dslearn.ops.softmax import log_softmax
from dslearn.tensor import Tensor


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor | None = None, *,
                      temperature: float = 4.0, alpha: float = 0.5) -> Tensor:
    """The teacher-student loss of a batch of ``(N, classes)`` logits; hard-label term only when ``targets`` is given.

    The teacher's logits are treated as constants (no gradient flows into the teacher).

    >>> import dslearn as ds
    >>> s, t = ds.tensor([[2.0, 0.0]], requires_grad=True), ds.tensor([[0.0, 2.0]])
    >>> round(distillation_loss(s, t, ds.tensor([0]), temperature=2.0, alpha=0.5).item(), 4)
    0.9877
    """
    op = "distillation_loss"
    student_logits, teacher_logits = to_tensor(student_logits, op), to_tensor(teacher_logits, op)
    if student_logits.ndim != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(f"{op}: expected student and teacher logits of one shape (N, classes), got "
                         f"{describe(student_logits)} and {describe(teacher_logits)}")
    if not temperature > 0:
        raise ValueError(f"{op}: temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{op}: alpha must be in [0, 1], got {alpha}")
    student_log_p = log_softmax(student_logits / temperature, 1)
    teacher_log_p = log_softmax(teacher_logits.detach() / temperature, 1)
    soft = kl_div(student_log_p, teacher_log_p, reduction="batchmean", log_target=True) * (temperature * temperature)
    if targets is None:
        return soft
    return soft * alpha + cross_entropy(student_logits, targets) * (1.0 - alpha)


def distill(student: Module, teacher: Module, optimizer, loader: Iterable, *, epochs: int = 1,
            temperature: float = 4.0, alpha: float = 0.5, scheduler=None, progress: bool = True,
            log: Callable | None = print) -> list[dict]:
    """Train ``student`` on ``loader`` ((inputs, targets) batches) against a frozen ``teacher``; return the history.

    The teacher runs in eval mode without gradients; ``scheduler.step()`` (if given) runs after each epoch.

    >>> import dslearn as ds
    >>> from dslearn.data import DataLoader, TensorDataset
    >>> _ = ds.manual_seed(0)
    >>> x = ds.randn(64, 4); y = (x[:, 0] > 0).long()
    >>> teacher, student = ds.nn.Linear(4, 2), ds.nn.Linear(4, 2)
    >>> history = distill(student, teacher, ds.optim.SGD(student.parameters(), lr=0.1),
    ...                   DataLoader(TensorDataset(x, y), batch_size=16), epochs=2, progress=False, log=None)
    >>> [round(h["loss"], 3) > 0 for h in history]
    [True, True]
    """
    if epochs < 1:
        raise ValueError(f"distill: epochs must be at least 1, got {epochs}")
    teacher_was_training = teacher.training
    teacher.eval()
    history = []
    try:
        for epoch in range(epochs):
            student.train()
            started, total, count = time.perf_counter(), 0.0, 0
            for inputs, targets in tqdm(loader, desc=f"distill {epoch + 1}/{epochs}", disable=not progress,
                                        leave=False, unit="batch"):
                with no_grad():
                    teacher_logits = teacher(inputs)
                loss = distillation_loss(student(inputs), teacher_logits, targets, temperature=temperature,
                                         alpha=alpha)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, count = total + loss.item() * len(targets), count + len(targets)
            if count == 0:
                raise ValueError("distill: the loader produced no samples")
            if scheduler is not None:
                scheduler.step()
            history.append({"epoch": epoch + 1, "loss": total / count, "seconds": time.perf_counter() - started})
            if log is not None:
                log(f"distill epoch {epoch + 1}/{epochs}: loss {total / count:.4f} ({history[-1]['seconds']:.1f} s)")
    finally:
        teacher.train(teacher_was_training)
    return history
