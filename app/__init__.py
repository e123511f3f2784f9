"""FastAPI front end. It must not import torch: it queues work by task name."""
