"""The command layer: `adapt`, `generate`, `index`, `eval` and `audit`. Each command is a list of stages
(stages.py) run by the one runner (retable.stage); the modules here only open the run folder, check the
input and wire the shared parts. The library packages (agent, teacher, encoder, adapters, evals, serving)
never import from here (.importlinter holds them to it)."""
