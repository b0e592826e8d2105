"""Knowledge distillation: the loss against torch's formula (Hinton et al.), and the training loop on a toy task.

Oracles: torch.nn.functional.kl_div / log_softmax / cross_entropy composed as in the paper, and a
student that can represent its teacher exactly (it must end up close to it).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dslearn as ds
from dslearn.data import DataLoader, TensorDataset
from dslearn.quantization import distill, distillation_loss


def torch_distillation_loss(student, teacher, targets, temperature, alpha):
    soft = F.kl_div(F.log_softmax(student / temperature, 1), F.softmax(teacher / temperature, 1),
                    reduction="batchmean") * temperature**2
    return soft if targets is None else alpha * soft + (1 - alpha) * F.cross_entropy(student, targets)


@given(logits=hnp.arrays(np.float64, (5, 4), elements=st.floats(-5, 5)),
       teacher=hnp.arrays(np.float64, (5, 4), elements=st.floats(-5, 5)),
       temperature=st.floats(0.5, 8.0), alpha=st.floats(0.0, 1.0), hard=st.booleans())
def test_loss_and_student_gradient_match_torch(logits, teacher, temperature, alpha, hard):
    targets = np.array([0, 3, 1, 2, 1])
    ours_in, theirs_in = ds.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    ours = distillation_loss(ours_in, ds.tensor(teacher), ds.tensor(targets) if hard else None,
                             temperature=temperature, alpha=alpha)
    theirs = torch_distillation_loss(theirs_in, torch.tensor(teacher), torch.tensor(targets) if hard else None,
                                     temperature, alpha)
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-9, atol=1e-12)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(ours_in.grad.numpy(), theirs_in.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_no_gradient_flows_into_the_teacher():
    teacher = ds.randn(3, 4, requires_grad=True)
    distillation_loss(ds.randn(3, 4, requires_grad=True), teacher, temperature=2.0).backward()
    assert teacher.grad is None


def test_distill_pulls_the_student_towards_the_teacher():
    ds.manual_seed(0)
    teacher, student = ds.nn.Linear(4, 3), ds.nn.Linear(4, 3)
    x = ds.randn(256, 4)
    loader = DataLoader(TensorDataset(x, teacher(x).argmax(1).detach()), batch_size=32)
    before = distillation_loss(student(x), teacher(x), temperature=2.0).item()
    history = distill(student, teacher, ds.optim.Adam(student.parameters(), lr=0.05), loader, epochs=10,
                      temperature=2.0, alpha=1.0, progress=False, log=None)
    after = distillation_loss(student(x), teacher(x), temperature=2.0).item()
    assert len(history) == 10 and after < 0.1 * before
    assert teacher.training  # the teacher's mode is restored


@pytest.mark.parametrize("call, message", [
    (lambda: distillation_loss(ds.ones(2, 3), ds.ones(2, 4)), "of one shape"),
    (lambda: distillation_loss(ds.ones(3), ds.ones(3)), r"of one shape \(N, classes\)"),
    (lambda: distillation_loss(ds.ones(2, 3), ds.ones(2, 3), temperature=0.0), "temperature must be positive"),
    (lambda: distillation_loss(ds.ones(2, 3), ds.ones(2, 3), alpha=1.5), r"alpha must be in \[0, 1\]"),
    (lambda: distill(ds.nn.Linear(2, 2), ds.nn.Linear(2, 2), None, [], epochs=0), "epochs must be at least 1"),
    (lambda: distill(ds.nn.Linear(2, 2), ds.nn.Linear(2, 2), ds.optim.SGD(ds.nn.Linear(2, 2).parameters(), lr=0.1),
                     [], progress=False, log=None), "produced no samples"),
])
def test_invalid_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
