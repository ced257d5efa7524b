#!/usr/bin/python3
"""Exports a small example classifier the way a training pipeline would.

Writes into OUT_DIR: best_model_final_v7.pt (TorchScript), dlsys.yaml (the pack spec) and
labels.txt. Uses /usr/bin/python3, the interpreter that has Debian's torch.
"""
import os
import sys

import torch

out = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out, exist_ok=True)
torch.manual_seed(7)


class IrisMLP(torch.nn.Module):
    """4 measurements of a flower -> scores for 3 species."""

    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(4, 16)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=-1)


model = torch.jit.script(IrisMLP().eval())
model.save(os.path.join(out, "best_model_final_v7.pt"))

with open(os.path.join(out, "labels.txt"), "w") as f:
    f.write("setosa\nversicolor\nvirginica\n")

with open(os.path.join(out, "dlsys.yaml"), "w") as f:
    f.write("""\
# The pack spec: everything a consumer needs to trust and run the model.
name: iris-mlp
version: 1.0.0
description: Classifies iris flowers from four measurements (example model)
owner: ml-platform@example.com
license: Apache-2.0
lineage:
  git_commit: 4f2c9e1
  parent_version: 0.9.0
  data_version: iris-2026-10
hyperparameters:
  hidden_units: 16
  learning_rate: 0.001
  epochs: 40
training:
  optimizer: adam
  batch_size: 32
  seed: 7
metrics:
  accuracy: 0.967
  f1_macro: 0.961
dependencies:
  torch: "1.13"
  python: "3.11"
inputs:
  - {name: x, dtype: float32, shape: [-1, 4]}
outputs:
  - {name: probabilities, dtype: float32, shape: [-1, 3]}
examples:
  - name: two-flowers
    inputs:
      x:
        data: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    rtol: 1.0e-5
    atol: 1.0e-6
files:
  - labels.txt
""")
print(f"wrote {out}/best_model_final_v7.pt, {out}/dlsys.yaml, {out}/labels.txt")
