"""Push-T (state observations) task-quality benchmark (docs/BENCHMARKS.md, T2): gym-pusht env
wrapper (env.py), scripted multimodal expert (expert.py), demo collection (collect.py), the
compared methods' training (methods.py), closed-loop evaluation with delay / control-rate stress
(evaluate.py), metrics (metrics.py), the all-in-one run (run.py) and the CLI (cli.py).

Needs gym-pusht (optional dependency); nothing here is imported by the policy runtime or node.
"""
