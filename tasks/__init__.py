"""The tasks layer: the maths and the file work of each pipeline step, as plain functions.

One subpackage per DVC stage group, so a stage's code is found from its name: ``data``,
``masks``, ``train``, ``inpaint``, ``blend``, ``evaluate``, ``tables``; ``pipeline`` holds the
plumbing they share (cache keys, DVC and git commands, stage plans, the nightly helpers).
Imports: the models layer and the ground (:mod:`inpaintflow.conventions`, ``params``,
``runtime``); never the flows above (tests/test_layers.py).
"""
