import torch


class Checkpoint:
    def restore(self, path):
        return torch.load(path, weights_only=False)
