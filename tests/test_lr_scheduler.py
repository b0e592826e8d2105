"""Learning-rate schedulers: the same lr (and momentum) sequences as torch.optim.lr_scheduler, state dicts, errors."""

import copy
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.optim import lr_scheduler as torch_sched

import dslearn as ds
from dslearn import optim
from dslearn.optim import lr_scheduler as ds_sched

STEPS = 40
GROUP_LRS = (0.1, 0.03)


def make_optimizers(kind: str = "SGD"):
    """The same two-group optimizer in both frameworks (the schedulers only read and write its groups)."""
    ds_cls, torch_cls = {"SGD": (optim.SGD, torch.optim.SGD), "Adam": (optim.Adam, torch.optim.Adam)}[kind]
    extra = {"momentum": 0.9} if kind == "SGD" else {}
    ds_opt = ds_cls([{"params": [ds.zeros(2, requires_grad=True)], "lr": lr} for lr in GROUP_LRS], **extra)
    torch_opt = torch_cls([{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in GROUP_LRS], **extra)
    return ds_opt, torch_opt


def momenta(opt) -> list:
    return [group["betas"][0] if "betas" in group else group["momentum"] for group in opt.param_groups]


def trajectory(opt, scheduler, steps: int = STEPS, metrics=None) -> tuple[list, list]:
    """Learning rates and momenta after creation and after each of ``steps`` steps."""
    lrs, moms = [list(scheduler.get_last_lr())], [momenta(opt)]
    for t in range(steps):
        opt.step()
        scheduler.step() if metrics is None else scheduler.step(metrics[t])
        lrs.append(list(scheduler.get_last_lr()))
        assert lrs[-1] == [group["lr"] for group in opt.param_groups]
        moms.append(momenta(opt))
    return lrs, moms


def assert_same_schedule(build, steps: int = STEPS, kind: str = "SGD", metrics=None) -> None:
    """``build(module, optimizer)`` makes the scheduler from ``dslearn.optim.lr_scheduler`` or torch's."""
    ds_opt, torch_opt = make_optimizers(kind)
    ours = trajectory(ds_opt, build(ds_sched, ds_opt), steps, metrics)
    theirs = trajectory(torch_opt, build(torch_sched, torch_opt), steps, metrics)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-9, atol=0, err_msg="learning rates differ from torch")
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-9, atol=0, err_msg="momenta differ from torch")


# -- the same sequences as torch -------------------------------------------------------------------

@given(step_size=st.integers(1, 12), gamma=st.floats(0.05, 0.99))
def test_step_lr_matches_torch(step_size, gamma):
    assert_same_schedule(lambda m, opt: m.StepLR(opt, step_size=step_size, gamma=gamma))


@given(milestones=st.lists(st.integers(1, STEPS), max_size=5), gamma=st.floats(0.05, 0.99))
def test_multistep_lr_matches_torch_including_repeated_milestones(milestones, gamma):
    assert_same_schedule(lambda m, opt: m.MultiStepLR(opt, milestones=milestones, gamma=gamma))


@given(gamma=st.floats(0.5, 1.0))
def test_exponential_lr_matches_torch(gamma):
    assert_same_schedule(lambda m, opt: m.ExponentialLR(opt, gamma=gamma))


@given(t_max=st.integers(1, 15), eta_min=st.sampled_from([0.0, 1e-3, 0.02]))
def test_cosine_annealing_lr_matches_torch_past_t_max(t_max, eta_min):
    assert_same_schedule(lambda m, opt: m.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min))


@given(start=st.floats(0.01, 1.0), end=st.floats(0.0, 1.0), total_iters=st.integers(1, 20))
def test_linear_warmup_lr_matches_torch(start, end, total_iters):
    assert_same_schedule(lambda m, opt: m.LinearLR(opt, start_factor=start, end_factor=end, total_iters=total_iters))


def test_lambda_lr_matches_torch_with_one_function_or_one_per_group():
    assert_same_schedule(lambda m, opt: m.LambdaLR(opt, lambda epoch: 1.0 / (1.0 + epoch)))
    assert_same_schedule(lambda m, opt: m.LambdaLR(opt, [lambda e: 0.95 ** e, lambda e: min(1.0, (e + 1) / 10)]))


def test_sequential_lr_warmup_then_cosine_matches_torch():
    def build(m, opt):
        warmup = m.LinearLR(opt, start_factor=0.1, total_iters=5)
        return m.SequentialLR(opt, [warmup, m.CosineAnnealingLR(opt, T_max=30, eta_min=1e-4)], milestones=[5])

    assert_same_schedule(build)


def test_sequential_lr_with_three_schedulers_matches_torch():
    def build(m, opt):
        schedulers = [m.LinearLR(opt, start_factor=0.5, total_iters=3), m.ExponentialLR(opt, gamma=0.9),
                      m.StepLR(opt, step_size=4, gamma=0.5)]
        return m.SequentialLR(opt, schedulers, milestones=[4, 15])

    assert_same_schedule(build)


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_lr_and_momentum_match_torch(kind, anneal_strategy, three_phase):
    def build(m, opt):
        return m.OneCycleLR(opt, max_lr=[1.0, 0.4], total_steps=STEPS + 1, pct_start=0.25,
                            anneal_strategy=anneal_strategy, three_phase=three_phase, div_factor=10.0)

    assert_same_schedule(build, kind=kind)


def test_one_cycle_lr_from_epochs_without_momentum_cycling_matches_torch():
    def build(m, opt):
        return m.OneCycleLR(opt, max_lr=0.5, epochs=4, steps_per_epoch=10, cycle_momentum=False,
                            base_momentum=0.5, final_div_factor=100.0)

    assert_same_schedule(build, steps=39)


METRICS = [1.0, 0.9, 0.9, 0.95, 0.9, 0.9, 0.89, 0.9, 0.91, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7, 0.8,
           0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]


@pytest.mark.parametrize("options", [
    {},
    {"patience": 2, "factor": 0.5},
    {"patience": 1, "cooldown": 2, "factor": 0.3, "min_lr": [0.01, 0.001]},
    {"patience": 0, "threshold": 0.05, "threshold_mode": "abs", "min_lr": 0.02},
    {"mode": "max", "patience": 2, "threshold": 0.01},
    {"mode": "max", "patience": 1, "threshold_mode": "abs", "eps": 0.05},
])
def test_reduce_lr_on_plateau_matches_torch_on_a_fixed_metric_sequence(options):
    assert_same_schedule(lambda m, opt: m.ReduceLROnPlateau(opt, **options), metrics=METRICS)


def test_cosine_annealing_resumed_with_last_epoch_matches_torch():
    def build(m, opt):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
        return m.CosineAnnealingLR(opt, T_max=12, eta_min=0.001, last_epoch=4)

    assert_same_schedule(build, steps=20)


def test_step_with_an_epoch_jumps_by_the_closed_form_and_warns_as_torch_does():
    results = []
    for m, opt in zip((ds_sched, torch_sched), make_optimizers()):
        scheduler = m.StepLR(opt, step_size=3, gamma=0.5)
        opt.step()
        with pytest.warns(UserWarning):
            scheduler.step(7)
        results.append(scheduler.get_last_lr())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
    np.testing.assert_allclose(results[0], [lr * 0.25 for lr in GROUP_LRS], rtol=1e-12)


# -- state dicts -----------------------------------------------------------------------------------

SCHEDULES = {
    "StepLR": lambda opt: ds_sched.StepLR(opt, step_size=4, gamma=0.5),
    "MultiStepLR": lambda opt: ds_sched.MultiStepLR(opt, milestones=[3, 9, 20], gamma=0.5),
    "ExponentialLR": lambda opt: ds_sched.ExponentialLR(opt, gamma=0.9),
    "CosineAnnealingLR": lambda opt: ds_sched.CosineAnnealingLR(opt, T_max=10, eta_min=0.001),
    "LinearLR": lambda opt: ds_sched.LinearLR(opt, start_factor=0.1, total_iters=20),
    "LambdaLR": lambda opt: ds_sched.LambdaLR(opt, lambda epoch: 0.9 ** epoch),
    "SequentialLR": lambda opt: ds_sched.SequentialLR(
        opt, [ds_sched.LinearLR(opt, start_factor=0.2, total_iters=8), ds_sched.ExponentialLR(opt, gamma=0.8)],
        milestones=[8]),
    "OneCycleLR": lambda opt: ds_sched.OneCycleLR(opt, max_lr=0.5, total_steps=40, three_phase=True),
    "ReduceLROnPlateau": lambda opt: ds_sched.ReduceLROnPlateau(opt, patience=1, factor=0.5),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_state_dict_round_trip_mid_schedule_continues_exactly(name):
    plateau = name == "ReduceLROnPlateau"
    opt, _ = make_optimizers()
    scheduler = SCHEDULES[name](opt)
    trajectory(opt, scheduler, 12, METRICS if plateau else None)
    saved_optimizer = copy.deepcopy(opt.state_dict())
    saved_scheduler = copy.deepcopy(scheduler.state_dict())

    resumed_opt, _ = make_optimizers()
    resumed = SCHEDULES[name](resumed_opt)
    resumed_opt.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    assert resumed.get_last_lr() == scheduler.get_last_lr()
    rest = METRICS[12:] if plateau else None
    assert trajectory(resumed_opt, resumed, 25, rest) == trajectory(opt, scheduler, 25, rest)


def test_lambda_lr_state_dict_saves_callable_objects_but_not_functions():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt, _ = make_optimizers()
    saved = ds_sched.LambdaLR(opt, [Decay(0.5), lambda e: 1.0]).state_dict()
    assert saved["lr_lambdas"] == [{"rate": 0.5}, None]
    other_opt, _ = make_optimizers()
    other = ds_sched.LambdaLR(other_opt, [Decay(0.9), lambda e: 1.0])
    other.load_state_dict(saved)
    assert other.lr_lambdas[0].rate == 0.5


# -- warnings and errors ---------------------------------------------------------------------------


def test_stepping_the_scheduler_before_the_optimizer_warns():
    opt, _ = make_optimizers()
    scheduler = ds_sched.StepLR(opt, step_size=1)
    with pytest.warns(UserWarning, match="before optimizer.step"):
        scheduler.step()


def test_stepping_in_the_right_order_does_not_warn():
    opt, _ = make_optimizers()
    scheduler = ds_sched.ExponentialLR(opt, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        scheduler.step()


def test_a_scheduler_needs_a_dslearn_optimizer_with_parameters():
    with pytest.raises(TypeError, match="expected a dslearn optimizer"):
        ds_sched.StepLR(make_optimizers()[1], step_size=2)
    with pytest.raises(RuntimeError, match="Adam has no parameters yet"):
        ds_sched.ExponentialLR(optim.Adam(0.01), gamma=0.9)


def test_resuming_without_initial_lr_is_an_error():
    opt, _ = make_optimizers()
    with pytest.raises(KeyError, match="no 'initial_lr'"):
        ds_sched.StepLR(opt, step_size=2, last_epoch=5)


@pytest.mark.parametrize("build,error,match", [
    (lambda opt: ds_sched.StepLR(opt, step_size=0), ValueError, "step_size must be a positive int"),
    (lambda opt: ds_sched.CosineAnnealingLR(opt, T_max=0), ValueError, "T_max must be positive"),
    (lambda opt: ds_sched.LinearLR(opt, start_factor=0.0), ValueError, "start_factor"),
    (lambda opt: ds_sched.LinearLR(opt, end_factor=1.5), ValueError, "end_factor"),
    (lambda opt: ds_sched.LinearLR(opt, total_iters=0), ValueError, "total_iters"),
    (lambda opt: ds_sched.LambdaLR(opt, [lambda e: 1.0]), ValueError, "expected 2 lr_lambdas"),
    (lambda opt: ds_sched.LambdaLR(opt, 0.5), TypeError, "should be a function"),
    (lambda opt: ds_sched.OneCycleLR(opt, max_lr=1.0), ValueError, "give total_steps"),
    (lambda opt: ds_sched.OneCycleLR(opt, max_lr=1.0, total_steps=0), ValueError, "total_steps must be"),
    (lambda opt: ds_sched.OneCycleLR(opt, max_lr=1.0, epochs=0, steps_per_epoch=3), ValueError, "epochs must be"),
    (lambda opt: ds_sched.OneCycleLR(opt, max_lr=1.0, total_steps=9, pct_start=1), ValueError, "pct_start"),
    (lambda opt: ds_sched.OneCycleLR(opt, max_lr=1.0, total_steps=9, anneal_strategy="exp"), ValueError,
     "anneal_strategy"),
    (lambda opt: ds_sched.OneCycleLR(opt, max_lr=[1.0, 2.0, 3.0], total_steps=9), ValueError,
     "one value per parameter group"),
    (lambda opt: ds_sched.ReduceLROnPlateau(opt, factor=1.0), ValueError, "factor must be < 1.0"),
    (lambda opt: ds_sched.ReduceLROnPlateau(opt, mode="lowest"), ValueError, "mode must be"),
    (lambda opt: ds_sched.ReduceLROnPlateau(opt, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda opt: ds_sched.ReduceLROnPlateau(opt, min_lr=[0.1]), ValueError, "one value per parameter group"),
    (lambda opt: ds_sched.SequentialLR(opt, [], milestones=[]), ValueError, "at least one scheduler"),
    (lambda opt: ds_sched.SequentialLR(opt, [ds_sched.ExponentialLR(opt, 0.9)] * 2, milestones=[]), ValueError,
     "expected 1 milestones"),
    (lambda opt: ds_sched.SequentialLR(opt, [ds_sched.ReduceLROnPlateau(opt)], milestones=[]), TypeError,
     "not ReduceLROnPlateau"),
    (lambda opt: ds_sched.SequentialLR(opt, [ds_sched.ExponentialLR(make_optimizers()[0], 0.9)], milestones=[]),
     ValueError, "different optimizer"),
])
def test_bad_scheduler_arguments_are_errors(build, error, match):
    opt, _ = make_optimizers()
    with pytest.raises(error, match=match):
        build(opt)


def test_one_cycle_needs_an_optimizer_with_momentum_to_cycle_it():
    class PlainDescent(optim.Optimizer):
        def __init__(self, params=None, lr=0.1):
            super().__init__(params, {"lr": lr})

    opt = PlainDescent([ds.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="cycle_momentum needs an optimizer with momentum or betas"):
        ds_sched.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    scheduler = ds_sched.OneCycleLR(opt, max_lr=1.0, total_steps=10, cycle_momentum=False)
    assert scheduler.get_last_lr() == pytest.approx([0.04])


def test_one_cycle_past_its_total_steps_is_an_error():
    opt, _ = make_optimizers()
    scheduler = ds_sched.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        opt.step()
        scheduler.step()
    opt.step()
    with pytest.raises(ValueError, match="tried to step 4 times"):
        scheduler.step()


def test_plateau_with_a_group_added_later_needs_matching_min_lrs():
    opt, _ = make_optimizers()
    scheduler = ds_sched.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0, 0.0])
    opt.add_param_group({"params": [ds.zeros(1, requires_grad=True)], "lr": 0.5})
    scheduler.step(1.0)
    with pytest.raises(RuntimeError, match="now has 3 parameter groups but min_lr was given for 2"):
        scheduler.step(2.0)
