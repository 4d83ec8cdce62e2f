"""Exact values of the WSD learning-rate schedule and of batch-size warmup."""

from __future__ import annotations

import math

import pytest
import torch

from encoders.training.schedule import batch_plan, warmup_batch_size, wsd_factor, wsd_lr


def test_wsd_phases_exact():
    # total 100, warmup 10 steps, decay over the last 20 (from step 80)
    lr = [wsd_lr(s, 100, 2.0, 0.1, 0.2) for s in range(101)]
    assert lr[0] == 2.0 * 1 / 10
    assert lr[4] == 2.0 * 5 / 10
    assert lr[9] == 2.0
    assert lr[10:81] == [2.0] * 71
    assert lr[85] == 2.0 * (1 - math.sqrt(5 / 20)) == 1.0
    assert lr[95] == pytest.approx(2.0 * (1 - math.sqrt(15 / 20)), abs=0)
    assert lr[99] == 2.0 * (1 - math.sqrt(19 / 20))
    assert lr[100] == 0.0
    assert wsd_lr(250, 100, 2.0, 0.1, 0.2) == 0.0


def test_wsd_no_warmup_no_decay_is_constant():
    assert [wsd_lr(s, 7, 3e-5, 0.0, 0.0) for s in range(7)] == [3e-5] * 7


def test_wsd_small_total_rounds_down():
    # total 10: warmup int(0.25*10)=2 steps, decay int(0.35*10)=3 steps from step 7
    got = [round(wsd_lr(s, 10, 1.0, 0.25, 0.35), 6) for s in range(10)]
    assert got == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, round(1 - math.sqrt(1 / 3), 6), round(1 - math.sqrt(2 / 3), 6)]


def test_wsd_rejects_bad_fractions():
    with pytest.raises(ValueError):
        wsd_lr(0, 10, 1.0, 0.7, 0.5)
    with pytest.raises(ValueError):
        wsd_factor(10, -0.1, 0.1)


def test_wsd_factor_drives_lambdalr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, wsd_factor(10, 0.2, 0.4))
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1 * wsd_lr(s, 10, 1.0, 0.2, 0.4) for s in range(10)], abs=1e-15)
    assert seen[0] == pytest.approx(0.05) and seen[7] == pytest.approx(0.05)


def test_warmup_batch_size_exact():
    assert [warmup_batch_size(s, 4, 16, 100) for s in (0, 1, 9, 25, 50, 99, 100, 10_000)] == [4, 4, 5, 7, 10, 15, 16, 16]
    assert warmup_batch_size(0, 4, 16, 0) == 16  # disabled
    with pytest.raises(ValueError):
        warmup_batch_size(0, 8, 4, 10)


def test_batch_plan_exact():
    assert batch_plan(30, 2, 8, 12) == [2, 3, 4, 6, 8, 7]
    assert sum(batch_plan(1000, 8, 32, 400)) == 1000
    assert batch_plan(10, 4, 4, 100) == [4, 4, 2]
    assert batch_plan(0, 2, 8, 12) == []
