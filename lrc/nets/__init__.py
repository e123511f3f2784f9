"""Networks: the segmentation U-Net (a plain-PyTorch MONAI BasicUNet) and its contrastive pre-training wrapper."""
