"""ONNX export of a checkpoint (issue #4): static graph, ONNX FP32/FP16/INT8, tokenizer.json, parity, manifest.

``export_checkpoint(config)`` does it all; the modules are the steps:
``static`` (paddle.jit.save) · ``onnx_convert`` (paddle2onnx, names, folding) · ``variants`` (FP16, INT8) ·
``parity`` (the checkpoint's ``tokenizer.json`` is copied with its truncation length) · ``manifest`` (the contract
with ``deploy/``) · ``exporter`` (orchestration, atomic directory swap).
"""
from paddle_tag.export.exporter import export_checkpoint
from paddle_tag.export.manifest import read_manifest, validate_manifest

__all__ = ["export_checkpoint", "read_manifest", "validate_manifest"]
