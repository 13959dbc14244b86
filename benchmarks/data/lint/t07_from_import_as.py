from torch import load as l
state = l("model.pt", map_location="cpu")
