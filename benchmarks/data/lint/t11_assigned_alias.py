import torch
L = torch.load
state = L("model.pt")
