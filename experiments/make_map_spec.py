"""Write configs/map/map.yaml (the distillation map's sweep) from the few choices below; run from the repo root:
    python experiments/make_map_spec.py
The YAML it writes is the artefact (read, validated and tested); this script only keeps its 60 cases consistent."""

from __future__ import annotations

from pathlib import Path

OPS = ["add", "sub", "mul", "div", "quad"]
# the student's training fraction per operation: below its from-scratch critical fraction on mod 59 at this budget
# (docs/map/critical.md, from configs/map/critical_ops.yaml)
FRACTION = {"add": 0.2, "sub": 0.2, "mul": 0.2, "div": 0.2, "quad": 0.2}
PAPER_FRACTION = 0.2  # mod-107 students (the paper's pair): the paper's below-threshold fraction
# teacher modulus -> (column label, teacher training fraction)
PAIRS = {61: ("61→59 close, P1>P2", 0.4), 97: ("97→59 far, P1>P2", 0.4), 31: ("31→59 far, P1<P2", 0.6)}
CROSS = "other op's teacher, 61→59"
PAPER = "113→107 paper's pair"

TEACHER = ("{{recipe: scratch, name: teacher-{op}{p}, seeds: [0], task: {{op: {op}, modulus: {p}, train_fraction: "
           "{f}}}, vocab: *vocab, model: *model, loss: *loss, optimizer: *optimizer, training: *teacher_training}}")

lines = [
    "# The distillation map (issue 14): for each operation, a student below its from-scratch critical fraction",
    "# distilled from teachers grokked on the same operation mod P1, against the same student from scratch, 3 seeds.",
    "# Columns: teacher -> student moduli close (61 -> 59) and far (97 -> 59, 31 -> 59), P1 > P2 and P1 < P2, the",
    "# paper's pair 113 -> 107 at the map's model size, and a teacher of another operation (add's; sub's for add).",
    "# Written by experiments/make_map_spec.py; the student fractions come from configs/map/critical_ops.yaml.",
    "# Settings (not re-tuned per cell, see docs/MAP.md): one-layer transformer d_model 64, AdamW lr 0.01 wd 1,",
    "# 2,000 full-batch steps; distillation at the operator position, alpha 0.99, T 32, alpha annealed to 0 over",
    "# steps 600-1,000 (the settings of the critical-threshold sweep, tuned on add 61 -> 59).",
    "#   grokkit sweep configs/map/map.yaml --out runs/map      (writes map.csv / map.md / map.png)",
    "name: distill-map",
    "base:",
    "  recipe: scratch",
    "  task: {op: add, modulus: 59, train_fraction: 0.2}",
    "  vocab: &vocab {n_numbers: 113, moduli: [31, 53, 59, 61, 97, 107, 113]}",
    "  model: &model {n_layers: 1, d_model: 64, n_heads: 4, d_head: 16, d_mlp: 256}",
    "  loss: &loss {kind: cross_entropy, dtype: float64}",
    "  optimizer: &optimizer {name: adamw, lr: 0.01, weight_decay: 1.0, betas: [0.9, 0.98], warmup_steps: 10}",
    "  training: {steps: 2000, eval_every: 50, checkpoint_every: 500, progress: false}",
    "  distill: {teacher: none, position: operator, alpha: 0.99, temperature: 32.0, alpha_decay_start: 600, "
    "alpha_decay_steps: 400}",
    "requires:",
]
for op in OPS:
    for p, (_, f) in PAIRS.items():
        lines.append(f"  {op}{p}: {{base: {TEACHER.format(op=op, p=p, f=f)}}}")
    lines.append(f"  {op}113: {{base: {TEACHER.format(op=op, p=113, f=0.35)}}}")
lines[lines.index("requires:") + 1] = lines[lines.index("requires:") + 1].replace(
    "training: *teacher_training", "training: &teacher_training {steps: 6000, eval_every: 50, early_stop: true, "
    "patience: 2, checkpoint_every: 1000, progress: false}")
lines.append("cases:")
for op in OPS:
    f = FRACTION[op]
    student = f"task.op: {op}, task.train_fraction: {f}"
    lines.append(f"  - {{name: scratch-{op}59, labels: {{method: scratch, op: {op}}}, overrides: {{recipe: scratch, "
                 f"{student}}}}}")
    for p, (label, _) in PAIRS.items():
        lines.append(f"  - {{name: kd-{op}{p}-{op}59, labels: {{method: distill, op: {op}, pair: \"{label}\"}}, "
                     f"overrides: {{recipe: distill, {student}, distill.teacher: \"{{requires.{op}{p}}}\"}}}}")
    other = "sub" if op == "add" else "add"
    lines.append(f"  - {{name: kd-{other}61-{op}59, labels: {{method: distill, op: {op}, pair: \"{CROSS}\"}}, "
                 f"overrides: {{recipe: distill, {student}, distill.teacher: \"{{requires.{other}61}}\"}}}}")
    paper = f"task.op: {op}, task.modulus: 107, task.train_fraction: {PAPER_FRACTION}"
    lines.append(f"  - {{name: scratch-{op}107, labels: {{method: scratch, op: {op}}}, overrides: {{recipe: scratch, "
                 f"{paper}}}}}")
    lines.append(f"  - {{name: kd-{op}113-{op}107, labels: {{method: distill, op: {op}, pair: \"{PAPER}\"}}, "
                 f"overrides: {{recipe: distill, {paper}, distill.teacher: \"{{requires.{op}113}}\"}}}}")
lines += ["n_seeds: 3", "map: {rows: op, cols: pair, title: \"distilled - from scratch, final test accuracy "
          "(3 seeds); seeds generalised (lasting)\"}"]
Path("src/grokkit/configs/map/map.yaml").write_text("\n".join(lines) + "\n")
