import dill
import torch
state = torch.load("m.pt", weights_only=True, pickle_module=dill)
