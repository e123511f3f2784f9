"""The U-Net's default widths and stage names, without torch: the API checks options against them."""

DEFAULT_FEATURES = (32, 32, 64, 128, 256, 32)
ENCODER_STAGES = ("conv_0", "down_1", "down_2", "down_3", "down_4")  # shallow to deep, as ``encode`` runs them
DECODER_STAGES = ("upcat_4", "upcat_3", "upcat_2", "upcat_1")  # deep to shallow, as ``decode`` runs them
