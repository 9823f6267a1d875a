"""The adapter: the product quantizer (quantizer.py), the code-indexed table kinds (table.py), the one tuning
that ships (teaching.py splits the teacher's labels, distill.py tunes on them), collisions, the `codes` and
`tune` stages, and the artifact folder that serves (artifact.py). The frozen encoder is retable.encoder;
the comparison tables are retable.baselines."""
