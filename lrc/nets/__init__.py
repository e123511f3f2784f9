"""Networks: the segmentation U-Net and its contrastive pre-training wrapper."""
