"""Methods: one module per restoration or analysis method (cyclegan; pix2pix, deoccluder, inversion,
manipulator and classifier follow), sharing the adversarial pieces of :mod:`unveil.methods.gan`."""
