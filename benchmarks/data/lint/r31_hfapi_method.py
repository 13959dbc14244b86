from huggingface_hub import HfApi
api = HfApi()
local = api.snapshot_download("org/model")
