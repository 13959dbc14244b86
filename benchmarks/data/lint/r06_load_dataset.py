from datasets import load_dataset
ds = load_dataset("org/dataset", split="train")
