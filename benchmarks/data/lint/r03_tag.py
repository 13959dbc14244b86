from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained("org/model", revision="v1.0.0")
