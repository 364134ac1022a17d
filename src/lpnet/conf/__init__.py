"""Hydra configuration groups (a package so installed copies find them as pkg://lpnet.conf)."""
