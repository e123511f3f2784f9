"""The HTTP layer: routers, dependencies, schemas and the problem+json mapping."""
