import torch
SAFE = True
state = torch.load("model.pt", weights_only=SAFE)
