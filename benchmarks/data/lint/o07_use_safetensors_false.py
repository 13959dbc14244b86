from transformers import AutoModel
model = AutoModel.from_pretrained("./m", use_safetensors=False)
