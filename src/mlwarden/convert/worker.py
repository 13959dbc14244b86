"""The conversion worker, run by ``mlwarden convert`` as ``python -I -m
mlwarden.convert.worker SRC DST`` with a scrubbed environment.

Inside, once torch is imported and before the file is read, an audit hook refuses network
connections, name lookups and process creation, so even a loader bug cannot phone home or
spawn a shell. Weights are read with ``torch.load(weights_only=True)``, written with
safetensors, read back and compared tensor by tensor. One JSON line on stdout reports the result.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_BLOCKED_EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
                   "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "os.fork", "os.forkpty", "ctypes.dlopen")


def _deny(event: str, args: tuple[Any, ...]) -> None:
    if event in _BLOCKED_EVENTS:
        raise PermissionError(f"mlwarden convert worker: {event} is not allowed")


def _state_dict(obj: Any) -> dict[str, Any]:
    import torch

    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict) and \
                not isinstance(obj.get(key), torch.Tensor):
            inner = obj[key]
            if inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError("the file does not hold a state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{len(bad)} entries are not tensors (first: {str(bad[0])[:80]})")
    return obj


def convert(src: str, dst: str) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file, save_file

    obj = torch.load(src, map_location="cpu", weights_only=True, mmap=False)
    sd = _state_dict(obj)
    seen: dict[tuple[int, int], str] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        # safetensors refuses shared storage: the second user of a storage gets a copy.
        tensors[name] = t.detach().clone().contiguous() if key in seen else t.detach().contiguous()
        if t.numel():
            seen.setdefault(key, name)
    save_file(tensors, dst, metadata={"format": "pt"})
    back = load_file(dst)
    if set(back) != set(tensors) or not all(torch.equal(back[k], tensors[k]) for k in tensors):
        raise ValueError("read-back of the safetensors file differs from the source tensors")
    return {"tensors": len(tensors), "torch": torch.__version__,
            "parameters": int(sum(t.numel() for t in tensors.values()))}


def main(argv: list[str]) -> int:
    # Native libraries load before the lock-down.
    import safetensors.torch
    import torch  # noqa: F401

    sys.addaudithook(_deny)
    if len(argv) != 2:
        print(json.dumps({"error": "usage: worker SRC DST"}))
        return 2
    try:
        result = convert(argv[0], argv[1])
    except Exception as exc:  # reported to the parent as one line, never a traceback
        print(json.dumps({"error": f"{type(exc).__name__}: {str(exc)[:500]}"}))
        return 1
    import safetensors

    result["safetensors"] = safetensors.__version__
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
