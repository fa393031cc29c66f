"""The adapter kit: what backend adapters, in tree or from a vendor, build on.

- `portable.kit.ort`: `OrtAdapter`, the base for any ONNX Runtime execution provider.
- `portable.kit.stub`: `VendorStubAdapter`, for stacks portable detects but cannot run.
- `portable.kit.probing`: `VendorRuntime`, looking for device nodes, libraries and tools.

The kit belongs to the backends layer: the core (`portable.run`, `portable.harness`, ...)
never imports it, so a runtime's quirks never leak into the harness.
"""
