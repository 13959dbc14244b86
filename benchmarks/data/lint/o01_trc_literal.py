from transformers import AutoModel
model = AutoModel.from_pretrained("org/model", revision="4f2c1e9b7a6d5c3b2a1f0e9d8c7b6a5f4e3d2c1b", trust_remote_code=True)
