from huggingface_hub import snapshot_download
local = snapshot_download("org/model", revision="refs/pr/1")
