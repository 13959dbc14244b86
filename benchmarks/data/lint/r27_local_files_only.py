from transformers import AutoModel
model = AutoModel.from_pretrained("org/model", local_files_only=True)
