"""EXPORT: documents that compile (``document``) and plots (``plot``); standalone modules are
written by ``symgrad.compiler.module``."""
