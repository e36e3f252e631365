"""Write the distillation map's sweeps, configs/map/map.yaml (every cell) and configs/map/map_cpu.yaml (the cells a
2-core machine runs in about an hour), from the few choices below; run from the repo root:
    python experiments/make_map_spec.py
The YAML files are the artefacts (read, validated and tested); this script only keeps their cases consistent."""

from __future__ import annotations

from pathlib import Path

OPS = ["add", "sub", "mul", "div", "quad"]
# the student's training fraction, below every operation's from-scratch critical fraction on mod 59 at this budget
# (docs/studies/map.md, from configs/map/critical_ops.yaml); the mod-107 students (the paper's pair) at the paper's 20%
FRACTION = 0.2
PAPER_FRACTION = 0.2
# teacher modulus -> (column label, teacher training fraction for add and mul)
PAIRS = {61: ("61→59 close, P1>P2", 0.4), 97: ("97→59 far, P1>P2", 0.4), 31: ("31→59 far, P1<P2", 0.6)}
# operations whose teachers need more data to grok within the budget (at 40% of mod 61: sub 0.86 after an early
# crossing, div 0.91, quad 0.40 after 6,000 steps), and the fraction they get instead
TEACHER_FRACTION = {"sub": 0.6, "div": 0.6, "quad": 0.8}
# the mod-113 teachers of the paper's pair (a larger modulus needs a smaller fraction; quad capped for CPU time)
TEACHER_FRACTION_113 = {"add": 0.35, "mul": 0.35, "sub": 0.5, "div": 0.5, "quad": 0.6}
CROSS = "other op's teacher, 61→59"
PAPER = "113→107 paper's pair"

TEACHER = ("{{recipe: scratch, name: teacher-{op}{p}, seeds: [0], task: {{op: {op}, modulus: {p}, train_fraction: "
           "{f}}}, vocab: *vocab, model: *model, loss: *loss, optimizer: *optimizer, training: {training}}}")
TEACHER_TRAINING = ("{steps: 6000, eval_every: 50, early_stop: true, patience: 2, checkpoint_every: 1000, "
                    "progress: false}")


def spec(name: str, pairs_of: dict[str, list[int]], paper_ops: list[str], about: list[str]) -> str:
    """Per operation: its scratch control, a distilled student per teacher modulus in ``pairs_of[op]``, one from
    another operation's teacher (add's; sub's for add), and for ``paper_ops`` the paper's pair with its own
    control."""
    lines = [
        "# The distillation map (issue 14): for each operation, a student below its from-scratch critical fraction,",
        "# distilled from a teacher grokked on the same operation mod P1, against the same student from scratch,",
        "# 3 seeds; and a teacher of another operation as a control of what shared structure means.",
        *about,
        "# Written by experiments/make_map_spec.py. Settings (not re-tuned per cell, see docs/studies/map.md): "
        "one-layer",
        "# transformer d_model 64, AdamW lr 0.01 wd 1, 2,000 full-batch steps; distillation at the operator",
        "# position, alpha 0.99, T 32, alpha annealed to 0 over steps 600-1,000 (tuned on add 61 -> 59); students at",
        f"# {FRACTION:.0%} of their pairs. Teachers: 40% of their pairs (sub, div: 60%, quad: 80%; mod 31: 60%;",
        "# mod 113: add, mul 35%, sub, div 50%, quad 60%), up to 6,000 steps, stopped once grokked. Run into the",
        "# directory of map_cpu.yaml, map.yaml reuses map_cpu's finished trials and runs the rest.",
        f"#   grokkit sweep configs/map/{name}.yaml --out runs/{name}      (writes map.csv / map.md / map.png)",
        f"name: distill-{name.replace('_', '-')}",
        "base:",
        "  recipe: scratch",
        f"  task: {{op: add, modulus: 59, train_fraction: {FRACTION}}}",
        "  vocab: &vocab {n_numbers: 113, moduli: [31, 53, 59, 61, 97, 107, 113]}",
        "  model: &model {n_layers: 1, d_model: 64, n_heads: 4, d_head: 16, d_mlp: 256}",
        "  loss: &loss {kind: cross_entropy, dtype: float64}",
        "  optimizer: &optimizer {name: adamw, lr: 0.01, weight_decay: 1.0, betas: [0.9, 0.98], warmup_steps: 10}",
        "  training: {steps: 2000, eval_every: 50, checkpoint_every: 500, progress: false}",
        "  distill: {teacher: none, position: operator, alpha: 0.99, temperature: 32.0, alpha_decay_start: 600, "
        "alpha_decay_steps: 400}",
        "requires:",
    ]
    needed: list[tuple[str, int]] = []
    for op in OPS:
        needed += [(op, p) for p in pairs_of[op]] + [("sub" if op == "add" else "add", 61)]
        needed += [(op, 113)] if op in paper_ops else []
    first = True
    for op, p in dict.fromkeys(needed):
        f = TEACHER_FRACTION_113[op] if p == 113 else TEACHER_FRACTION.get(op, PAIRS[p][1])
        training = f"&teacher_training {TEACHER_TRAINING}" if first else "*teacher_training"
        lines.append(f"  {op}{p}: {{base: {TEACHER.format(op=op, p=p, f=f, training=training)}}}")
        first = False
    lines.append("cases:")
    for op in OPS:
        student = f"task.op: {op}, task.train_fraction: {FRACTION}"
        lines.append(f"  - {{name: scratch-{op}59, labels: {{method: scratch, op: {op}}}, overrides: {{recipe: "
                     f"scratch, {student}}}}}")
        for p in pairs_of[op]:
            lines.append(f"  - {{name: kd-{op}{p}-{op}59, labels: {{method: distill, op: {op}, pair: "
                         f"\"{PAIRS[p][0]}\"}}, overrides: {{recipe: distill, {student}, distill.teacher: "
                         f"\"{{requires.{op}{p}}}\"}}}}")
        other = "sub" if op == "add" else "add"
        lines.append(f"  - {{name: kd-{other}61-{op}59, labels: {{method: distill, op: {op}, pair: \"{CROSS}\"}}, "
                     f"overrides: {{recipe: distill, {student}, distill.teacher: \"{{requires.{other}61}}\"}}}}")
        if op in paper_ops:
            paper = f"task.op: {op}, task.modulus: 107, task.train_fraction: {PAPER_FRACTION}"
            lines.append(f"  - {{name: scratch-{op}107, labels: {{method: scratch, op: {op}}}, overrides: {{recipe: "
                         f"scratch, {paper}}}}}")
            lines.append(f"  - {{name: kd-{op}113-{op}107, labels: {{method: distill, op: {op}, pair: \"{PAPER}\"}}, "
                         f"overrides: {{recipe: distill, {paper}, distill.teacher: \"{{requires.{op}113}}\"}}}}")
    lines += ["n_seeds: 3", "map: {rows: op, cols: pair, title: \"distilled - from scratch, final test accuracy "
              "(3 seeds); seeds generalised (lasting)\"}"]
    return "\n".join(lines) + "\n"


every = {op: list(PAIRS) for op in OPS}
Path("src/grokkit/configs/map/map.yaml").write_text(spec("map", every, OPS, [
    "# Every cell: teacher -> student moduli close (61 -> 59) and far (97 -> 59, 31 -> 59), P1 > P2 and P1 < P2,",
    "# and the paper's pair 113 -> 107 at the map's model size; 105 trials + 22 teachers (about 3 CPU hours on 2",
    "# cores; one GPU: minutes). The 2-core machine runs map_cpu.yaml, a subset of these cells."]))
cut = {op: ([61, 97, 31] if op in ("add", "mul") else [61]) for op in OPS}
Path("src/grokkit/configs/map/map_cpu.yaml").write_text(spec("map_cpu", cut, [], [
    "# The cells a 2-core machine runs in about an hour (a subset of map.yaml, same settings): every operation",
    "# with its close teacher (61 -> 59) and another operation's teacher; the far pairs (97 -> 59, 31 -> 59) for",
    "# add and mul only (one operation whose answers mod 61 and mod 59 agree on half the pairs, one whose do not);",
    "# the paper's pair 113 -> 107 is left to map.yaml."]))
