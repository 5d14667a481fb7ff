"""One readable file per paper (see ../shared/STYLE.md), plus what they share (common.py, vgg.py).

``RECIPES`` is the registry the training engine, the CLI and params.yaml validation use:
model name -> (module, recipe class, VGG-19 layers its losses need). Plain data, so reading
it imports no torch.
"""

RECIPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "rmnet": ("inpaintflow.models.rmnet", "RMNetRecipe", ("block3_conv3",)),        # paper 000
    "dcgan": ("inpaintflow.models.dcgan", "DCGANRecipe", ()),                       # papers 001, 002 baseline
    "wgan-gp": ("inpaintflow.models.wgan_gp", "WGANGPRecipe", ()),                  # paper 002
    "regionwise": ("inpaintflow.models.regionwise", "RegionwiseRecipe", ("pool1", "pool2", "pool3")),  # 003
    "gla": ("inpaintflow.models.gla", "GLARecipe", ()),                             # paper 004
}
