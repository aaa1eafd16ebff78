"""adapters/store"""
