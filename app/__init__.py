"""FastAPI front end (the service issue). It must not import torch: it queues work by task name."""
