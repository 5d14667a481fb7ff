"""Step ``masks``: fixed evaluation mask sets, and the training masks drawn on the fly.

``generators`` (the mask families, hole-ratio bins), ``sets`` (a versioned mask set from a
config and a seed), ``importers`` (Quick Draw and NVIDIA masks converted to the one convention).
"""
