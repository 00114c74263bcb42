"""The bottom layer: texts and tokens, data loaders, the two-tower model, losses, pair metrics, input checks,
atomic files. It imports nothing else from relcollab."""
