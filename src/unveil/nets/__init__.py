"""Network building blocks, chosen by name as in the reference CycleGAN / pix2pix code (Zhu et al. 2017,
Isola et al. 2017): ``define_G`` and ``define_D`` build and initialise generators and discriminators."""

from unveil.nets.discriminators import NLayerDiscriminator, PixelDiscriminator, define_D
from unveil.nets.generators import ResnetGenerator, UnetGenerator, define_G
from unveil.nets.layers import count_parameters, get_norm_layer, init_weights

__all__ = [
    "NLayerDiscriminator", "PixelDiscriminator", "ResnetGenerator", "UnetGenerator", "count_parameters",
    "define_D", "define_G", "get_norm_layer", "init_weights",
]
