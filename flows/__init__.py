"""The flows layer: thin Prefect flows, one module per pipeline step (data, masks, train,
inpaint, blend, evaluate, tables), plus ``pipeline`` (a paper's stages in order) and
``nightly`` (scheduled retraining). Each flow wraps the functions of its step in
:mod:`inpaintflow.tasks`; only the command line (:mod:`inpaintflow.cli`) imports a flow.
"""
