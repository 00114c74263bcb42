"""The application layer: the `relcollab` command (`cli`, `retrieval_cli`, `cli_options`), the demo and the
collection benchmark. It imports every other layer."""
