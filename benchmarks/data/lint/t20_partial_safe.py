from functools import partial

import torch

safe_load = partial(torch.load, weights_only=True)
state = safe_load("model.pt")
