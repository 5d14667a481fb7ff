"""inpaintflow: reproducible inpainting-GAN pipelines (datasets, masks, training, tables).

The project-wide conventions live in :mod:`inpaintflow.conventions`; configuration in
:mod:`inpaintflow.params`; the command line in :mod:`inpaintflow.cli`.
"""

__version__ = "0.1.0"
