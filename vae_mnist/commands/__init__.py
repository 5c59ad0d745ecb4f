"""Each command's glue, one module per command: what `vae-mnist COMMAND` does once parsed.

`vae_mnist.cli` parses the command line and calls ``run(arguments, program)`` of the
command's module.
"""
