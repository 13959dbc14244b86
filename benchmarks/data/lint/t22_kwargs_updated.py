import torch
opts = {"map_location": "cpu"}
opts["weights_only"] = True
state = torch.load("model.pt", **opts)
