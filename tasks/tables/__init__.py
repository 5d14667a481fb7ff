"""Step ``table``: the papers' tables beside their reported numbers.

``render`` (the tables, their grids and provenance.json), ``audit`` (``inpaintflow audit``:
recorded tables against what the code renders), ``regression`` (metric comparison with
tolerances, for the nightly run).
"""
