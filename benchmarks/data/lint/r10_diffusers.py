from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained("org/sd-model")
