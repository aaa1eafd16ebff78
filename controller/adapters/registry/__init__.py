"""adapters/registry"""
