"""Mixed precision: ``autocast`` runs matrix products and convolutions in float16 or bfloat16, and
``GradScaler`` scales the loss so that float16 gradients do not underflow.

May import: numpy, dslearn.tensor, dslearn.dtypes, dslearn.autograd, dslearn.ops.

>>> import dslearn as ds
>>> _ = ds.manual_seed(0)
>>> model = ds.nn.Linear(4, 2)
>>> optimizer = ds.optim.SGD(model.parameters(), lr=0.1)
>>> scaler = ds.amp.GradScaler(init_scale=1024.0)
>>> with ds.amp.autocast(dtype=ds.float16):
...     loss = model(ds.ones(3, 4)).square().mean()
>>> scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()
>>> model.weight.grad.dtype, scaler.get_scale(), scaler.skipped_steps
(dslearn.float32, 1024.0, 0)
"""

from dslearn.amp.autocast import FLOAT32_OPS, LOW_PRECISION_OPS, autocast, current_autocast, is_autocast_enabled
from dslearn.amp.grad_scaler import GradScaler

__all__ = ["FLOAT32_OPS", "LOW_PRECISION_OPS", "GradScaler", "autocast", "current_autocast", "is_autocast_enabled"]
