from torch import load
state = load("model.pt")
