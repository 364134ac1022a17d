"""Hydra configuration groups (a package so installed copies find them as pkg://lpnet.conf)."""

from lpnet.conf.schema import register

register()
