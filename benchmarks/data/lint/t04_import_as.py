import torch as T
state = T.load("model.pt")
