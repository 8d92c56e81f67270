"""The run engine: config schema and validation, training loop, evaluation, run directories, resume."""
