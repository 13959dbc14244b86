import torch
WEIGHTS_ONLY = False
state = torch.load("model.pt", weights_only=WEIGHTS_ONLY)
