"""Your own model: compression, counts and the candidate pipeline for any ``nn.Module``.

The pieces are plain functions over the user's callables, so a family plug-in and the Python
API can wire them without knowing each other:

- :mod:`.callables`: ``"module:attr"`` strings and Python callables, resolved and checked
  shippable to pool / Ray workers;
- :mod:`.context`: the ``context`` object the user's code receives;
- :mod:`.rules`: per-layer compression rules chosen by glob over module names;
- :mod:`.compress`: masks, dependency-aware channel pruning and fake quantization of any model;
- :mod:`.materialize`: the compressed model on real kernels, for latency;
- :mod:`.counts`: per-layer analytic counts and a predictor feature vector;
- :mod:`.pipeline`: build → compress → calibrate → fine-tune → evaluate → materialise →
  measure, with user errors turned into structured failures.
"""
