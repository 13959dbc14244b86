from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained("org/model", revision="main")
