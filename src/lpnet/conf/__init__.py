"""Hydra configs, a package so that ``pkg://lpnet.conf`` (compose API, installed copies) finds them."""
