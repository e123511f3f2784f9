"""Training: slice data, LRC/MoCo pre-training, fine-tuning."""
