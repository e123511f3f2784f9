"""What the routes call: one function per use case, on records, blobs and the queue (no HTTP here)."""
