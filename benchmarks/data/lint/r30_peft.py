from peft import PeftModel
from transformers import AutoModelForCausalLM

base = AutoModelForCausalLM.from_pretrained("org/base", revision="4f2c1e9b7a6d5c3b2a1f0e9d8c7b6a5f4e3d2c1b")
model = PeftModel.from_pretrained(base, "org/adapter")
