from transformers import AutoModel
model = AutoModel.from_pretrained("org/model", revision="4F2C1E9B7A6D5C3B2A1F0E9D8C7B6A5F4E3D2C1B")
