"""inpaintflow: reproducible inpainting-GAN pipelines (datasets, masks, training, tables).

The ground floor every layer imports: :mod:`inpaintflow.conventions` (formats, the mask
convention), :mod:`inpaintflow.params` (params.yaml, validated) and :mod:`inpaintflow.runtime`
(Prefect, Dask). Above it, in import order: :mod:`inpaintflow.models`, :mod:`inpaintflow.tasks`,
:mod:`inpaintflow.flows`, and at the top the command line :mod:`inpaintflow.cli`. The three
layers live in the checkout's top-level folders ``models/``, ``tasks/``, ``flows/`` and are
installed under this package (pyproject.toml ``package-dir``).
"""

import os as _os

__version__ = "0.1.0"

# A source checkout: this folder's parent holds flows/, tasks/ and models/. When the checkout
# itself is first on sys.path (``python -m inpaintflow.cli`` from its root), this package is
# found here rather than in site-packages, so its layers are looked up beside it too.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
_layers = [_os.path.join(_checkout, name, "__init__.py") for name in ("flows", "tasks", "models")]
if _os.path.isfile(_os.path.join(_checkout, "pyproject.toml")) and all(map(_os.path.isfile, _layers)):
    __path__.append(_checkout)  # noqa: F821  (a package's __path__)
